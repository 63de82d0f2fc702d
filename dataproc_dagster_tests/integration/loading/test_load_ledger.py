"""The load ledger's state machine, in the engine's ``default`` database and in an Atomic one.

A crash is simulated in-process by an exception that no ``except Exception`` catches, raised at a
named instant (the crash tests in test_load_kills.py SIGKILL real processes instead).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable

import pandas as pd
import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.chunks import ChunkSet, ChunkWriter
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.loading import writer
from dataproc_dagster.loading.ledger import (
    LEDGER_TABLE,
    PUBLISHED,
    PUBLISHING,
    LedgerEntry,
    LoadState,
    read_entries,
    recover_target,
    write_entry,
)
from dataproc_dagster.loading.spec import LoadResult, LoadSpec
from dataproc_dagster.loading.writer import load_chunkset


class Killed(BaseException):
    """Stands for SIGKILL: not an ``Exception``, so the loader's error handling does not run."""


def _chunks(clickhouse: ClickHouseResource, dataset_id: str, offset: int = 0) -> ChunkSet:
    # Under the test's data folder (DATAPROC_DATA_DIR), on either backend.
    folder = get_settings().dataproc_data_dir / "chunks" / dataset_id.replace("/", "_")
    with ChunkWriter(folder, dataset_id) as chunk_writer:
        for part in range(3):
            ids = range(offset + part * 10, offset + (part + 1) * 10)
            chunk_writer.write(pd.DataFrame({"id": ids, "p": [i % 4 for i in ids]}))
    return chunk_writer.close()


def _kill_at(monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    def kill_point(name: str) -> None:
        if name == point:
            raise Killed(name)

    monkeypatch.setattr(writer, "kill_point_for_tests", kill_point)


def _load_run(
    clickhouse: ClickHouseResource,
    spec: LoadSpec,
    run: str,
    run_succeeded: Callable[[str], bool | None],
) -> LoadResult:
    """Load the same 30 rows as run ``run`` would (its own dataset)."""
    with clickhouse.get_client() as client:
        return load_chunkset(
            client,
            _chunks(clickhouse, f"{run}/extract"),
            spec,
            run_id=run,
            run_succeeded=run_succeeded,
            exclusive=True,
        )


def _count_sum(clickhouse: ClickHouseResource, database: str) -> tuple[int, int]:
    ((count, total),) = clickhouse.query_rows(f"SELECT count(), sum(id) FROM {database}.t")
    return int(count), int(total)


def _work_tables(clickhouse: ClickHouseResource, database: str) -> list[str]:
    rows = clickhouse.query_rows(
        "SELECT name FROM system.tables WHERE database = %(db)s AND "
        "(startsWith(name, '_stage_') OR startsWith(name, '_shadow_'))",
        {"db": database},
    )
    return [r[0] for r in rows]


@pytest.mark.parametrize("database", ["default", "atomic_db"])
@pytest.mark.parametrize(
    ("mode", "partition_by"),
    [
        ("append", "p"),
        ("append", None),
        ("replace", "p"),
        ("replace", None),
        ("replace_partitions", "p"),
    ],
)
def test_a_crash_after_the_swap_is_recorded_as_published(
    clickhouse: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
    database: str,
    partition_by: str | None,
    mode: str,
) -> None:
    clickhouse.command(f"CREATE DATABASE IF NOT EXISTS {database} ENGINE = Atomic")
    spec = LoadSpec(database=database, table="t", mode=mode, partition_by=partition_by)
    with clickhouse.get_client() as client:
        load_chunkset(client, _chunks(clickhouse, "run-0/extract", offset=1000), spec)
    before = _count_sum(clickhouse, database)
    new = _chunks(clickhouse, "run-1/extract")

    _kill_at(monkeypatch, "publishing:after_swap")
    with clickhouse.get_client() as client, pytest.raises(Killed):
        load_chunkset(client, new, spec, run_id="run-1")
    monkeypatch.undo()
    # replace_partitions: the new rows cover every partition of the earlier ones.
    new_rows = (30, sum(range(30)))
    expected = (before[0] + 30, before[1] + new_rows[1]) if mode == "append" else new_rows
    assert _count_sum(clickhouse, database) == expected  # readers already see the new data
    assert _states(clickhouse, database) == {
        "run-0/extract": PUBLISHED,
        "run-1/extract": PUBLISHING,
    }

    # The re-execution of the crashed run (same chunks): settled as published, not loaded again.
    with clickhouse.get_client() as client:
        result = load_chunkset(client, new, spec, run_id="run-1-retry", exclusive=True)
    assert _count_sum(clickhouse, database) == expected
    if mode == "append":
        assert result.skipped and "already loaded" in result.skipped
    assert _work_tables(clickhouse, database) == []
    comments = clickhouse.query_rows(
        "SELECT comment FROM system.tables WHERE database = %(db)s AND name = 't'",
        {"db": database},
    )
    assert comments == [("",)]  # the swap marker did not stay on the table


def _states(clickhouse: ClickHouseResource, database: str) -> dict[str, str]:
    with clickhouse.get_client() as client:
        return {e.dataset_id: e.state for e in read_entries(client, database, "t")}


@pytest.mark.parametrize("point", ["staging:chunk:0", "staged", "publishing:attach:2"])
def test_a_crash_before_the_swap_is_undone(
    clickhouse: ClickHouseResource, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    spec = LoadSpec(database="default", table="t", partition_by="p")
    with clickhouse.get_client() as client:
        load_chunkset(client, _chunks(clickhouse, "run-0/extract", offset=1000), spec)
    new = _chunks(clickhouse, "run-1/extract")
    _kill_at(monkeypatch, point)
    with clickhouse.get_client() as client, pytest.raises(Killed):
        load_chunkset(client, new, spec)
    monkeypatch.undo()
    assert _count_sum(clickhouse, "default") == (30, sum(range(1000, 1030)))
    assert _states(clickhouse, "default")["run-1/extract"] in ("staging", "staged", "publishing")

    with clickhouse.get_client() as client:
        done = recover_target(client, "default", "t", exclusive=True)
        load_chunkset(client, new, spec, exclusive=True)
    assert any("undone" in line for line in done)
    assert _count_sum(clickhouse, "default") == (60, sum(range(1000, 1030)) + sum(range(30)))
    assert _work_tables(clickhouse, "default") == []


def test_identical_data_published_by_a_run_that_did_not_finish_is_not_published_again(
    clickhouse: ClickHouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = LoadSpec(database="default", table="t")
    finished = {"run-0"}
    with clickhouse.get_client() as client:
        load_chunkset(client, _chunks(clickhouse, "run-0/extract"), spec, run_id="run-0")
    _kill_at(monkeypatch, "published")
    with clickhouse.get_client() as client, pytest.raises(Killed):
        load_chunkset(client, _chunks(clickhouse, "run-1/extract"), spec, run_id="run-1")
    monkeypatch.undo()
    assert _count_sum(clickhouse, "default") == (60, 2 * sum(range(30)))

    # run-2 (run-1 never finished) is recorded, not published; once run-2 finished, the same
    # rows again (run-3) are a real second load.
    steps = [
        ("run-2", "identical to the data already published by run run-1, which did not finish"),
        ("run-3", None),
    ]
    for (run, skipped), rows in zip(steps, (60, 90), strict=True):
        result = _load_run(clickhouse, spec, run, finished.__contains__)
        assert result.skipped == skipped
        assert _count_sum(clickhouse, "default") == (rows, rows // 30 * sum(range(30)))
        finished.add(run)


def test_a_ledger_of_the_previous_shape_keeps_its_history(
    clickhouse: ClickHouseResource,
) -> None:
    clickhouse.command(
        f"CREATE TABLE default.{LEDGER_TABLE} (target String, dataset_id String, mode String, "
        "rows UInt64, loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY (target, dataset_id)"
    )
    clickhouse.command(
        f"INSERT INTO default.{LEDGER_TABLE} (target, dataset_id, mode, rows) "
        "VALUES ('t', 'run-0/extract', 'append', 30)"
    )
    spec = LoadSpec(database="default", table="t")
    chunks = _chunks(clickhouse, "run-0/extract")
    with clickhouse.get_client() as client:
        result = load_chunkset(client, chunks, spec)
        (entry,) = read_entries(client, "default", "t")
    assert result.skipped and "already loaded" in result.skipped
    assert (entry.state, entry.rows) == (PUBLISHED, 30)


def test_an_unfinished_load_of_a_live_process_is_left_alone(
    clickhouse: ClickHouseResource,
) -> None:
    """Against a server (not exclusive): a live owner on this host keeps its tables."""
    spec = LoadSpec(database="default", table="t")
    with clickhouse.get_client() as client:
        load_chunkset(client, _chunks(clickhouse, "run-0/extract"), spec)
        client.command("CREATE TABLE default._stage_t_0123456789ab AS default.t")
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        host = socket.gethostname()
        for dataset, pid, stage in (
            ("live/x", 1, "_stage_t_0123456789ab"),
            ("dead/x", int(dead.stdout), "_stage_t_ba9876543210"),
        ):
            write_entry(
                client,
                "default",
                LedgerEntry(
                    "t",
                    dataset,
                    "append",
                    "r",
                    LoadState.STAGING,
                    stage=stage,
                    owner=f"{host}:{pid}",
                ),
            )
        client.command("CREATE TABLE default._stage_t_ba9876543210 AS default.t")
        done = recover_target(client, "default", "t", exclusive=False)
        states = {e.dataset_id: e.state for e in read_entries(client, "default", "t")}
    assert states["live/x"] == "staging" and states["dead/x"] == "abandoned"
    assert len(done) == 1 and "dead/x" in done[0]
    assert _work_tables(clickhouse, "default") == ["_stage_t_0123456789ab"]


def test_data_published_by_a_run_the_instance_does_not_know_is_loaded_again(
    clickhouse: ClickHouseResource,
) -> None:
    """execute_in_process runs live in temporary instances: their outcome is not guessed."""
    spec = LoadSpec(database="default", table="t")
    for run in ("run-0", "run-1"):
        result = _load_run(clickhouse, spec, run, lambda _run_id: None)
        assert result.skipped is None
    assert _count_sum(clickhouse, "default") == (60, 2 * sum(range(30)))
