"""Loads run at the same instant by worker processes, for the shared-table tests.

Each worker is its own OS process (``spawn``) with its own ClickHouse client, as two Dagster runs
on two hosts are. The workers start once (importing the package costs seconds) and then take one
task per round; every task of a round names the same start time, so the loads overlap.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from dataclasses import dataclass, replace
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from typing import Any

from dataproc_dagster.core.chunks import ChunkSet
from dataproc_dagster.loading.spec import LoadSpec

# Seconds between handing out a round and its start: the tasks reach every worker by then.
_LEAD_SECONDS = 0.3
_READY = "ready"


@dataclass(frozen=True)
class LoadTask:
    """One ``load_chunkset`` call of a worker."""

    url: str
    chunks: ChunkSet
    spec: LoadSpec
    run_id: str
    load_id: str
    start_at: float = 0.0


def _serve(
    worker: int, tasks: Queue[LoadTask | None], results: Queue[tuple[int, str | None]]
) -> None:
    """A worker's loop: wait for the round's start, load, report (worker, error or None)."""
    from dataproc_dagster.clickhouse.connection import ClickHouseConnection
    from dataproc_dagster.loading.writer import load_chunkset

    results.put((worker, _READY))
    while (task := tasks.get()) is not None:
        time.sleep(max(0.0, task.start_at - time.time()))
        try:
            with ClickHouseConnection(url=task.url).get_client() as client:
                load_chunkset(
                    client,
                    task.chunks,
                    task.spec,
                    run_id=task.run_id,
                    load_id=task.load_id,
                    exclusive=False,
                )
        except BaseException:  # reported to the test, which names it
            results.put((worker, traceback.format_exc()[-3000:]))
        else:
            results.put((worker, None))


class LoadWorkers:
    """``count`` worker processes; :meth:`run_round` runs one load on each of the first ones."""

    def __init__(self, count: int, *, start_timeout: float = 120.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._results: Queue[tuple[int, str | None]] = context.Queue()
        self._tasks: list[Queue[LoadTask | None]] = [context.Queue() for _ in range(count)]
        self._processes: list[SpawnProcess] = [
            context.Process(target=_serve, args=(number, tasks, self._results), daemon=True)
            for number, tasks in enumerate(self._tasks)
        ]
        for process in self._processes:
            process.start()
        for _ in self._processes:
            _worker, error = self._next_result(start_timeout)
            assert error == _READY, error

    def _next_result(self, timeout: float) -> tuple[int, str | None]:
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            alive = [p.pid for p in self._processes if p.is_alive()]
            message = f"no worker answered within {timeout} s (alive: {alive})"
            raise AssertionError(message) from None

    def run_round(self, tasks: list[LoadTask], timeout: float = 120.0) -> list[str | None]:
        """Start every task at the same instant; per task, its traceback or None when it loaded."""
        assert len(tasks) <= len(self._tasks), "more tasks than workers"
        start_at = time.time() + _LEAD_SECONDS
        for queue_of_worker, task in zip(self._tasks, tasks, strict=False):
            queue_of_worker.put(replace(task, start_at=start_at))
        outcome: list[str | None] = [None] * len(tasks)
        for _ in tasks:
            worker, error = self._next_result(timeout)
            outcome[worker] = error
        return outcome

    def close(self) -> None:
        """Stop the workers (each ends after its current task)."""
        for worker in self._tasks:
            worker.put(None)
        for process in self._processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()

    def __enter__(self) -> LoadWorkers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
