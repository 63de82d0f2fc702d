"""Celery workers and 'machines' for the deployment tests: each its own folders and process.

A machine is an environment with its own ``DATAPROC_DATA_DIR`` and ``DATAPROC_LOG_DIR``; what
machines share comes from the test's environment (``DAGSTER_HOME`` on PostgreSQL,
``CHUNK_STORE``, ``CLICKHOUSE_URL``). Workers start with ``./run.sh worker NAME``, as the docs
say, each in its own session, and are stopped by their pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    """A started worker: its folder (data/, logs/, worker.log) and its process."""

    root: Path
    proc: subprocess.Popen[bytes]


def machine_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of one 'machine': the shared settings, its own folders."""
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        DATAPROC_DATA_DIR=str(root / "data"),
        DATAPROC_LOG_DIR=str(root / "logs"),
        PYTHONPATH=str(REPO),  # the test code location lives in the tests package
        LOG_LEVEL="INFO",
        **extra,
    )
    return env


@contextmanager
def celery_workers(tmp_path: Path, broker: str, count: int, **extra: str) -> Iterator[list[Worker]]:
    """``./run.sh worker NAME`` ``count`` times, each with its own folders under ``tmp_path``
    and ``extra`` in its environment; yields their folders; stops them at the end."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for index in range(1, count + 1):
            root = tmp_path / f"worker-{index}"
            env = machine_env(root, CELERY_BROKER_URL=broker, **extra)
            log = (root / "worker.log").open("wb")
            proc = subprocess.Popen(
                ["./run.sh", "worker", f"{tmp_path.name}-{index}"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            procs.append((proc, root))
        deadline = time.monotonic() + 120
        for proc, root in procs:
            while "ready." not in (root / "worker.log").read_text(errors="replace"):
                assert proc.poll() is None, (root / "worker.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (root / "worker.log").read_text()[-3000:]
                time.sleep(0.5)
        yield [Worker(root, proc) for proc, root in procs]
    finally:
        for proc, _root in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # Celery's warm shutdown
        for proc, _root in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
