"""The load ledger and idempotent publishing, in `default` and in an Atomic database.

A crash is simulated in-process by an exception that no ``except Exception`` catches, raised at a
named instant (the crash tests in test_load_kills.py SIGKILL real processes instead).
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pandas as pd
import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.chunks import ChunkSet, ChunkWriter
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.loading.ledger import (
    LEDGER_TABLE,
    LEGACY_LEDGER_TABLE,
    PUBLISHED,
    PUBLISHING,
    LedgerEntry,
    LoadState,
    load_key,
    read_entries,
    read_entry,
    stage_table_name,
    write_entry,
)
from dataproc_dagster.loading.publish import recover_target
from dataproc_dagster.loading.spec import LoadSpec
from dataproc_dagster.loading.writer import load_chunkset
from dataproc_dagster_tests.helpers.kill_points import Killed, kill_at


def _chunks(dataset_id: str, offset: int = 0) -> ChunkSet:
    # Under the test's data folder (DATAPROC_DATA_DIR), on either backend.
    folder = get_settings().dataproc_data_dir / "chunks" / dataset_id.replace("/", "_")
    with ChunkWriter(folder, dataset_id) as chunk_writer:
        for part in range(3):
            ids = range(offset + part * 10, offset + (part + 1) * 10)
            chunk_writer.write(pd.DataFrame({"id": ids, "p": [i % 4 for i in ids]}))
    return chunk_writer.close()


def _count_sum(
    clickhouse: ClickHouseResource, database: str, mode: str = "append"
) -> tuple[int, int]:
    final = " FINAL" if mode == "upsert" else ""  # versions of a key collapse in merges
    ((count, total),) = clickhouse.query_rows(f"SELECT count(), sum(id) FROM {database}.t{final}")
    return int(count), int(total)


def _work_tables(clickhouse: ClickHouseResource, database: str) -> list[str]:
    rows = clickhouse.query_rows(
        "SELECT name FROM system.tables WHERE database = %(db)s AND "
        "(startsWith(name, '_stage_') OR startsWith(name, '_shadow_')) ORDER BY name",
        {"db": database},
    )
    return [r[0] for r in rows]


def _state(clickhouse: ClickHouseResource, database: str, load_id: str) -> str | None:
    with clickhouse.get_client() as client:
        entry = read_entry(client, database, "t", load_key(database, "t", load_id))
    return None if entry is None else entry.state


def _expected(mode: str, before: tuple[int, int], loads: int = 1) -> tuple[int, int]:
    """After the earlier load (ids 1000..1029) and ``loads`` loads of ids 0..29."""
    new = (30, sum(range(30)))
    if mode in ("append",):
        return before[0] + loads * new[0], before[1] + loads * new[1]
    if mode == "upsert":  # distinct keys: every row stays
        return before[0] + new[0], before[1] + new[1]
    return new  # replace; replace_partitions: the new rows cover every earlier partition


PUBLISH_CASES = [
    ("append", "p", "publishing:partition:2"),
    ("append", None, "publishing:partition:1"),
    ("append", "p", "published:before_cleanup"),
    ("upsert", "p", "publishing:partition:2"),
    ("replace", "p", "publishing:after_swap"),
    ("replace", None, "publishing"),
    ("replace_partitions", "p", "publishing:partition:2"),
]


def _spec(database: str, mode: str, partition_by: str | None) -> LoadSpec:
    keys = ("id",) if mode == "upsert" else ()
    return LoadSpec(
        database=database, table="t", mode=mode, partition_by=partition_by, key_columns=keys
    )


@pytest.mark.parametrize("database", ["default", "atomic_db"])
@pytest.mark.parametrize(("mode", "partition_by", "point"), PUBLISH_CASES)
def test_a_load_killed_while_publishing_is_finished_by_its_retry(
    clickhouse: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
    database: str,
    mode: str,
    partition_by: str | None,
    point: str,
) -> None:
    clickhouse.command(f"CREATE DATABASE IF NOT EXISTS {database} ENGINE = Atomic")
    spec = _spec(database, mode, partition_by)
    with clickhouse.get_client() as client:
        load_chunkset(client, _chunks("run-0/extract", offset=1000), spec)
    before = _count_sum(clickhouse, database, mode)
    new = _chunks("run-1/extract")

    kill_at(monkeypatch, point)
    with clickhouse.get_client() as client, pytest.raises(Killed):
        load_chunkset(client, new, spec, run_id="run-1", load_id="root-1/load")
    monkeypatch.undo()
    assert _state(clickhouse, database, "root-1/load") in (PUBLISHING, PUBLISHED)

    # The retry or re-execution (same identity, another run, another process): rolled forward.
    with clickhouse.get_client() as client:
        result = load_chunkset(client, new, spec, run_id="run-2", load_id="root-1/load")
    assert _count_sum(clickhouse, database, mode) == _expected(mode, before)
    assert _state(clickhouse, database, "root-1/load") == PUBLISHED
    assert _work_tables(clickhouse, database) == []
    if point == "published:before_cleanup":
        assert result.skipped and "already loaded" in result.skipped
    comments = clickhouse.query_rows(
        "SELECT comment FROM system.tables WHERE database = %(db)s AND name = 't'",
        {"db": database},
    )
    assert comments == [("",)]  # the swap marker did not stay on the table

    # Once more: a no-op.
    with clickhouse.get_client() as client:
        again = load_chunkset(client, new, spec, run_id="run-3", load_id="root-1/load")
    assert again.skipped and _count_sum(clickhouse, database, mode) == _expected(mode, before)


@pytest.mark.parametrize(("mode", "partition_by", "point"), PUBLISH_CASES)
def test_the_next_load_of_the_table_finishes_an_interrupted_publish(
    clickhouse: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    partition_by: str | None,
    point: str,
) -> None:
    """Another load (another identity, no idea whether the first owner lives) rolls it forward."""
    spec = _spec("default", mode, partition_by)
    with clickhouse.get_client() as client:
        load_chunkset(client, _chunks("run-0/extract", offset=1000), spec)
    before = _count_sum(clickhouse, "default", mode)
    kill_at(monkeypatch, point)
    with clickhouse.get_client() as client, pytest.raises(Killed):
        load_chunkset(client, _chunks("run-1/extract"), spec, load_id="root-1/load")
    monkeypatch.undo()

    # A full replace killed before its swap is the one case that asks whether its owner is gone
    # (a swap cannot be repeated): here the caller knows (the embedded engine's lock).
    exclusive = mode == "replace" and point == "publishing"
    with clickhouse.get_client() as client:
        result = load_chunkset(
            client, _chunks("run-2/extract"), spec, load_id="root-2/load", exclusive=exclusive
        )
    if point != "published:before_cleanup":
        assert any("rolled forward" in line for line in result.recovered), result.recovered
    assert _state(clickhouse, "default", "root-1/load") == PUBLISHED
    assert _count_sum(clickhouse, "default", mode) == _expected(mode, before, loads=2)
    assert _work_tables(clickhouse, "default") == []


@pytest.mark.parametrize("point", ["staging:chunk:0", "staged"])
def test_a_load_killed_before_publishing_is_undone_and_its_retry_loads_once(
    clickhouse: ClickHouseResource, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    spec = LoadSpec(database="default", table="t", partition_by="p")
    with clickhouse.get_client() as client:
        load_chunkset(client, _chunks("run-0/extract", offset=1000), spec)
    new = _chunks("run-1/extract")
    kill_at(monkeypatch, point)
    with clickhouse.get_client() as client, pytest.raises(Killed):
        load_chunkset(client, new, spec)
    monkeypatch.undo()
    assert _count_sum(clickhouse, "default") == (30, sum(range(1000, 1030)))

    with clickhouse.get_client() as client:
        done = recover_target(client, "default", "t", exclusive=True)
        load_chunkset(client, new, spec, exclusive=True)
    assert any("undone" in line for line in done)
    assert _count_sum(clickhouse, "default") == (60, sum(range(1000, 1030)) + sum(range(30)))
    assert _work_tables(clickhouse, "default") == []


def test_a_new_load_of_identical_rows_is_new_data(clickhouse: ClickHouseResource) -> None:
    """Judged by identity, not content: a second run of an append appends again."""
    spec = LoadSpec(database="default", table="t")
    with clickhouse.get_client() as client:
        for run in ("run-1", "run-2", "run-1"):
            load_chunkset(client, _chunks(f"{run}/extract"), spec, load_id=f"{run}/load")
    assert _count_sum(clickhouse, "default") == (60, 2 * sum(range(30)))


def test_a_ledger_of_the_previous_shape_is_kept_beside_the_new_one(
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
    clickhouse.command("CREATE TABLE default.t (id Int64, p Int64) ENGINE = MergeTree ORDER BY id")
    # A shadow table of the previous publishing scheme, left by a dead load.
    clickhouse.command("CREATE TABLE default._shadow_t_0123456789ab AS default.t")
    spec = LoadSpec(database="default", table="t")
    with clickhouse.get_client() as client:
        result = load_chunkset(client, _chunks("run-1/extract"), spec, exclusive=True)
        (entry,) = read_entries(client, "default", "t")
    assert result.rows == 30 and entry.state == PUBLISHED
    assert clickhouse.query_rows(f"SELECT count() FROM default.{LEGACY_LEDGER_TABLE}") == [(1,)]
    assert _work_tables(clickhouse, "default") == []


def test_an_unfinished_stage_of_a_live_process_is_left_alone(
    clickhouse: ClickHouseResource,
) -> None:
    """Against a server (not exclusive): a live owner on this host keeps its stage."""
    spec = LoadSpec(database="default", table="t")
    with clickhouse.get_client() as client:
        load_chunkset(client, _chunks("run-0/extract"), spec)
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        host = socket.gethostname()
        stages = {}
        for load_id, pid in (("live/x", 1), ("dead/x", int(dead.stdout))):
            key = load_key("default", "t", load_id)
            stages[load_id] = stage_table_name("t", key)
            write_entry(
                client,
                "default",
                LedgerEntry(
                    "t",
                    key,
                    load_id,
                    "append",
                    "r",
                    LoadState.STAGING,
                    stage=stages[load_id],
                    owner=f"{host}:{pid}",
                ),
            )
            client.command(f"CREATE TABLE default.{stages[load_id]} AS default.t")
        done = recover_target(client, "default", "t", exclusive=False)
        states = {e.load_id: e.state for e in read_entries(client, "default", "t")}
    assert states["live/x"] == "staging" and states["dead/x"] == "abandoned"
    assert len(done) == 1 and "dead/x" in done[0]
    assert _work_tables(clickhouse, "default") == [stages["live/x"]]


def test_a_publishing_load_of_another_host_is_finished_without_asking_if_it_lives(
    clickhouse: ClickHouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An owner on another host (a Kubernetes pod) that was publishing: rolled forward."""
    spec = LoadSpec(database="default", table="t", partition_by="p")
    kill_at(monkeypatch, "publishing:partition:1")
    with clickhouse.get_client() as client, pytest.raises(Killed):
        load_chunkset(client, _chunks("run-1/extract"), spec, load_id="pod-a/load")
    monkeypatch.undo()
    key = load_key("default", "t", "pod-a/load")
    with clickhouse.get_client() as client:
        entry = read_entry(client, "default", "t", key)
        assert entry is not None and entry.state == PUBLISHING
        write_entry(client, "default", entry.moved(PUBLISHING, owner="pod-a-7f9c:1"))
        done = recover_target(client, "default", "t", exclusive=False)
    assert any("rolled forward" in line for line in done)
    assert _count_sum(clickhouse, "default") == (30, sum(range(30)))
    assert _state(clickhouse, "default", "pod-a/load") == PUBLISHED
    assert _work_tables(clickhouse, "default") == []
