"""``replace_partitions`` of a partitioned run replaces its whole window: a partition of the
window without rows is emptied, also when the load is killed while publishing and finished by
its retry or by the next load of the table; a window without any rows is kept unless
``allow_empty_replace``. Rows outside the window are never touched.

A crash is simulated in-process as in test_load_ledger.py (an exception no ``except Exception``
catches, raised at a named instant of the writer).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.chunks import ChunkSet, ChunkWriter, ReplacedWindow
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.loading import publish
from dataproc_dagster.loading.ledger import (
    PUBLISHED,
    PUBLISHING,
    LedgerEntry,
    load_key,
    read_entry,
)
from dataproc_dagster.loading.publish import recover_target
from dataproc_dagster.loading.spec import LoadSpec
from dataproc_dagster.loading.writer import load_chunkset
from dataproc_dagster_tests.helpers.kill_points import Killed, kill_at

FIRST = datetime(2024, 3, 1, tzinfo=UTC)
# grain -> (PARTITION BY, column type, partition length)
GRAINS = {
    "daily": ("toYYYYMMDD(ts, 'UTC')", "DateTime64(6, 'UTC')", timedelta(days=1)),
    "hourly": ("toStartOfHour(ts, 'UTC')", "DateTime64(6, 'UTC')", timedelta(hours=1)),
    "daily_datetime": ("toYYYYMMDD(ts, 'UTC')", "DateTime('UTC')", timedelta(days=1)),
}


def _killed_while_publishing(
    clickhouse: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
    chunks: ChunkSet,
    spec: LoadSpec,
    point: str,
) -> LedgerEntry:
    """Load ``chunks`` as ``root-1/load``, killed at ``point``; its entry, in publishing."""
    kill_at(monkeypatch, point)
    with clickhouse.get_client() as client, pytest.raises(Killed):
        load_chunkset(client, chunks, spec, load_id="root-1/load")
    monkeypatch.undo()
    with clickhouse.get_client() as client:
        entry = read_entry(client, "default", "t", load_key("default", "t", "root-1/load"))
    assert entry is not None and entry.state == PUBLISHING
    return entry


def _chunks(dataset_id: str, slots: dict[int, int], step: timedelta, id_base: int) -> ChunkSet:
    """``slots[i]`` rows in partition ``i`` (from FIRST, ``step`` long), ids from ``id_base``."""
    folder = get_settings().dataproc_data_dir / "chunks" / dataset_id.replace("/", "_")
    rows = [
        {"id": id_base + 100 * slot + n, "ts": FIRST + slot * step + timedelta(minutes=n)}
        for slot, count in slots.items()
        for n in range(count)
    ]
    frame = pd.DataFrame(rows, columns=["id", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    with ChunkWriter(folder, dataset_id) as chunk_writer:
        chunk_writer.write(frame)
    return chunk_writer.close()


def _window(step: timedelta, slots: range) -> ReplacedWindow:
    starts = [FIRST + slot * step for slot in slots]
    return ReplacedWindow("ts", "UTC", tuple(int(s.timestamp() * 1_000_000) for s in starts))


def _per_slot(clickhouse: ClickHouseResource, step: timedelta) -> dict[int, list[int]]:
    seconds = int(step.total_seconds())
    rows = clickhouse.query_rows(
        f"SELECT intDiv(toUnixTimestamp(ts) - {int(FIRST.timestamp())}, {seconds}) AS slot, "
        "groupArray(id) FROM (SELECT * FROM t ORDER BY id) GROUP BY slot ORDER BY slot"
    )
    return {int(slot): sorted(ids) for slot, ids in rows}


@pytest.fixture
def table(clickhouse: ClickHouseResource, request: pytest.FixtureRequest) -> timedelta:
    partition_by, column, step = GRAINS[request.param]
    clickhouse.command(
        f"CREATE TABLE t (id Int64, ts {column}) ENGINE = MergeTree "
        f"PARTITION BY {partition_by} ORDER BY id"
    )
    spec = LoadSpec(database="default", table="t", mode="replace_partitions")
    # Six partitions of 3 rows each (ids 0-2, 100-102, ..., 500-502).
    with clickhouse.get_client() as client:
        load_chunkset(client, _chunks("run-0/load", {s: 3 for s in range(6)}, step, 0), spec)
    return step


@pytest.mark.parametrize("table", list(GRAINS), indirect=True)
def test_a_window_partition_without_rows_is_emptied(
    clickhouse: ClickHouseResource, table: timedelta
) -> None:
    step = table
    spec = LoadSpec(database="default", table="t", mode="replace_partitions")
    # The window is partitions 1-4; the source now has rows for 1 and 3 only (new ids).
    chunks = replace(
        _chunks("run-1/load", {1: 2, 3: 1}, step, 10_000), replaces=_window(step, range(1, 5))
    )
    with clickhouse.get_client() as client:
        result = load_chunkset(client, chunks, spec, load_id="root-1/load")
    assert result.rows == 3 and not result.skipped
    assert _per_slot(clickhouse, step) == {
        0: [0, 1, 2],  # outside the window: untouched
        1: [10_100, 10_101],
        3: [10_300],
        5: [500, 501, 502],  # outside the window: untouched
    }


@pytest.mark.parametrize("table", ["daily"], indirect=True)
@pytest.mark.parametrize("point", ["publishing", "publishing:partition:1"])
@pytest.mark.parametrize("finisher", ["retry", "next_load"])
def test_a_killed_publish_still_empties_the_window(
    clickhouse: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
    table: timedelta,
    point: str,
    finisher: str,
) -> None:
    step = table
    spec = LoadSpec(database="default", table="t", mode="replace_partitions")
    chunks = replace(
        _chunks("run-1/load", {2: 1}, step, 10_000), replaces=_window(step, range(1, 4))
    )
    entry = _killed_while_publishing(clickhouse, monkeypatch, chunks, spec, point)
    with clickhouse.get_client() as client:
        if finisher == "retry":  # the step's retry or a re-execution: the same load
            load_chunkset(client, chunks, spec, load_id="root-1/load")
        else:  # another load of the table settles it first, knowing nothing of its window
            recover_target(client, "default", "t", exclusive=True)
        entry = read_entry(client, "default", "t", entry.load_key)
        assert entry is not None and entry.state == PUBLISHED
    assert _per_slot(clickhouse, step) == {
        0: [0, 1, 2],
        2: [10_200],
        4: [400, 401, 402],
        5: [500, 501, 502],
    }
    assert clickhouse.query_rows(
        "SELECT count() FROM system.tables WHERE startsWith(name, '_stage_')"
    ) == [(0,)]


@pytest.mark.parametrize("table", ["daily"], indirect=True)
@pytest.mark.parametrize("allow", [False, True])
def test_a_window_without_any_rows_is_kept_unless_empty_is_allowed(
    clickhouse: ClickHouseResource, table: timedelta, allow: bool
) -> None:
    step = table
    spec = LoadSpec(
        database="default", table="t", mode="replace_partitions", allow_empty_replace=allow
    )
    empty = _chunks("run-1/load", {}, step, 10_000)
    chunks = replace(empty, replaces=_window(step, range(2, 4)))
    with clickhouse.get_client() as client:
        result = load_chunkset(client, chunks, spec, load_id="root-1/load")
    expected = {slot: [100 * slot + n for n in range(3)] for slot in range(6)}
    if allow:
        del expected[2], expected[3]
        assert not result.skipped
    else:
        assert result.skipped and "allow_empty_replace is off" in result.skipped
    assert _per_slot(clickhouse, step) == expected


@pytest.mark.parametrize("table", ["daily"], indirect=True)
def test_two_finishers_of_one_load_both_end_published(
    clickhouse: ClickHouseResource, monkeypatch: pytest.MonkeyPatch, table: timedelta
) -> None:
    """The load's owner and another finisher (a retry, the next load of the table) publish the
    same load at once: the one that loses the race finds the stage gone and ends without error,
    and the rows are the load's, once."""
    step = table
    spec = LoadSpec(database="default", table="t", mode="replace_partitions")
    chunks = replace(
        _chunks("run-1/load", {1: 1, 2: 1}, step, 10_000), replaces=_window(step, range(1, 4))
    )
    entry = _killed_while_publishing(clickhouse, monkeypatch, chunks, spec, "publishing")
    overtaken: list[str] = []

    def other_finisher(name: str) -> None:
        # After this finisher's first partition, the other one publishes the whole load.
        if name == "publishing:partition:1" and not overtaken:
            overtaken.append(name)
            with clickhouse.get_client() as other:
                publish.finish_publishing(other, "default", entry)

    monkeypatch.setattr(publish, "kill_point_for_tests", other_finisher)
    with clickhouse.get_client() as client:
        done = publish.finish_publishing(client, "default", entry)
    assert overtaken and done.state == PUBLISHED
    assert _per_slot(clickhouse, step) == {
        0: [0, 1, 2],
        1: [10_100],
        2: [10_200],
        4: [400, 401, 402],
        5: [500, 501, 502],
    }
