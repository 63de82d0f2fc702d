"""A load that fails part-way leaves the table as it was; a retry loads each row exactly once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    ReexecutionOptions,
    RetryPolicy,
    execute_job,
    reconstructable,
)

from dataproc_dagster import create_clickhouse_loader
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.helpers import faulty_job
from dataproc_dagster_tests.helpers.pipelines import failure_message, run_pipeline

MODES = [
    ("append", {}),
    ("replace", {}),
    ("upsert", {"key_columns": ["id"]}),
    ("replace_partitions", {"partition_by": "chunk"}),
]


def _frames(count: int = 5, size: int = 1000, offset: int = 0) -> list[pd.DataFrame]:
    return [
        pd.DataFrame({"id": range(offset + i * size, offset + (i + 1) * size), "chunk": i})
        for i in range(count)
    ]


class FailOnce:
    """``on_chunk`` hook that fails the first attempt after ``after`` chunks."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.fired = 0

    def __call__(self, index: int, rows: int) -> None:
        if index + 1 == self.after and not self.fired:
            self.fired += 1
            raise RuntimeError(f"injected failure after {rows} rows")


def _no_staging(clickhouse: ClickHouseResource) -> bool:
    rows = clickhouse.query_rows(
        "SELECT count() FROM system.tables WHERE database = 'default' AND name LIKE '\\_stage\\_%'"
    )
    return rows == [(0,)]


@pytest.mark.parametrize(("mode", "options"), MODES)
def test_failed_load_leaves_the_table_exactly_as_it_was(
    clickhouse: ClickHouseResource, mode: str, options: dict[str, object]
) -> None:
    loader = create_clickhouse_loader("t", mode=mode, order_by=["id"], **options)
    assert run_pipeline(clickhouse, _frames(2, 100), loader, chunk_rows=100).success
    final = "FINAL" if mode == "upsert" else ""
    before = clickhouse.query_rows(f"SELECT id, chunk FROM t {final} ORDER BY id")
    assert len(before) == 200

    failing = create_clickhouse_loader(
        "t", mode=mode, order_by=["id"], on_chunk=FailOnce(3), **options
    )
    result = run_pipeline(clickhouse, _frames(5, 1000, offset=50), failing, chunk_rows=1000)

    assert not result.success
    assert "injected failure after 3000 rows" in failure_message(result)
    assert clickhouse.query_rows(f"SELECT id, chunk FROM t {final} ORDER BY id") == before
    assert _no_staging(clickhouse)


@pytest.mark.parametrize(("mode", "options"), MODES)
def test_op_retry_after_failure_loads_each_row_once(
    clickhouse: ClickHouseResource, mode: str, options: dict[str, object]
) -> None:
    hook = FailOnce(after=3)
    loader = create_clickhouse_loader(
        "t",
        mode=mode,
        order_by=["id"],
        retry_policy=RetryPolicy(max_retries=2),
        on_chunk=hook,
        **options,
    )
    result = run_pipeline(clickhouse, _frames(5, 1000), loader, chunk_rows=1000)

    assert result.success
    assert hook.fired == 1
    assert clickhouse.query_rows("SELECT count(), uniqExact(id), sum(id) FROM t") == [
        (5000, 5000, sum(range(5000)))
    ]
    assert _no_staging(clickhouse)


def test_retry_of_a_finished_append_does_not_duplicate(
    clickhouse: ClickHouseResource, data_dir: Path
) -> None:
    """A load step retried after it published (e.g. a crash after the swap) writes nothing."""
    from dataproc_dagster.core.chunks import ChunkWriter
    from dataproc_dagster.loading.spec import LoadSpec
    from dataproc_dagster.loading.writer import load_chunkset

    with ChunkWriter(data_dir / "chunks", "run-1/extract") as writer:
        for frame in _frames(3, 100):
            writer.write(frame)
    chunks = writer.close()
    spec = LoadSpec(database="default", table="t", order_by=("id",))
    with clickhouse.get_client() as client:
        first = load_chunkset(client, chunks, spec)
        second = load_chunkset(client, chunks, spec)
    assert (first.rows, second.rows) == (300, 0)
    assert second.skipped and "already loaded" in second.skipped
    assert clickhouse.query_rows("SELECT count() FROM t") == [(300,)]


def test_reexecution_from_failure_loads_each_row_once(
    clickhouse: ClickHouseResource, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with faulty_job.instance_with_a_failed_run(tmp_path, monkeypatch) as (instance, parent_run_id):
        job = reconstructable(faulty_job.faulty_job)
        assert not (tmp_path / "fault").exists()
        assert clickhouse.query_rows(
            "SELECT count() FROM system.tables "
            "WHERE database = 'default' AND name = 'faulty_events'"
        ) == [(1,)]
        assert clickhouse.query_rows("SELECT count() FROM faulty_events") == [(0,)]

        options = ReexecutionOptions.from_failure(parent_run_id, instance)
        with execute_job(job, instance=instance, reexecution_options=options) as second:
            assert second.success
            steps = {e.step_key for e in second.all_events if e.is_step_success}
            # The extract step was not run again; the load and the table's checks were.
            assert steps == {
                "faulty_append__etl.faulty_append__load",
                "faulty_append__faulty_events_checks",
            }

    runs = data_dir / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []  # both runs' chunks were removed
    total = faulty_job.CHUNKS * faulty_job.ROWS_PER_CHUNK
    assert clickhouse.query_rows("SELECT count(), uniqExact(id) FROM faulty_events") == [
        (total, total)
    ]
