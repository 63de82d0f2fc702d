"""Write modes of the ClickHouse loader, each checked by the rows that landed."""

from __future__ import annotations

import pandas as pd
import pytest

from dataproc_dagster import create_clickhouse_loader
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.helpers.pipelines import failure_message, run_pipeline


def _events(ids: range, day: str, value: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": list(ids),
            "day": pd.to_datetime([day] * len(ids)),
            "value": [value] * len(ids),
        }
    )


def _staging_tables(clickhouse: ClickHouseResource) -> list[str]:
    return [
        r[0]
        for r in clickhouse.query_rows(
            "SELECT name FROM system.tables WHERE name LIKE '\\_stage\\_%'"
        )
    ]


def test_append_adds_rows_and_creates_the_table(clickhouse: ClickHouseResource) -> None:
    loader = create_clickhouse_loader("events", order_by=["id"])
    assert run_pipeline(clickhouse, [_events(range(0, 1000), "2024-01-01")], loader).success
    assert run_pipeline(clickhouse, [_events(range(1000, 1500), "2024-01-02")], loader).success

    assert clickhouse.query_rows("SELECT count(), uniqExact(id) FROM events") == [(1500, 1500)]
    types = dict(
        clickhouse.query_rows(
            "SELECT name, type FROM system.columns WHERE database = 'default' AND table = 'events'"
        )
    )
    assert types == {"id": "Int64", "day": "DateTime64(6, 'UTC')", "value": "Float64"}
    assert _staging_tables(clickhouse) == []


def test_replace_swaps_the_whole_table(clickhouse: ClickHouseResource) -> None:
    loader = create_clickhouse_loader("events", mode="replace", order_by=["id"])
    assert run_pipeline(clickhouse, [_events(range(0, 1000), "2024-01-01")], loader).success
    assert run_pipeline(clickhouse, [_events(range(5, 8), "2024-02-01", 2.0)], loader).success

    assert clickhouse.query_rows("SELECT id, value FROM events ORDER BY id") == [
        (5, 2.0),
        (6, 2.0),
        (7, 2.0),
    ]
    assert _staging_tables(clickhouse) == []


def test_replace_with_no_rows_keeps_the_table(clickhouse: ClickHouseResource) -> None:
    loader = create_clickhouse_loader("events", mode="replace", order_by=["id"])
    assert run_pipeline(clickhouse, [_events(range(0, 10), "2024-01-01")], loader).success
    result = run_pipeline(clickhouse, [_events(range(0), "2024-01-01")], loader)
    assert result.success
    assert clickhouse.query_rows("SELECT count() FROM events") == [(10,)]


def test_replace_partitions_only_touches_partitions_in_the_data(
    clickhouse: ClickHouseResource,
) -> None:
    loader = create_clickhouse_loader(
        "events", mode="replace_partitions", order_by=["id"], partition_by="toYYYYMMDD(day)"
    )
    first = pd.concat(
        [_events(range(0, 100), "2024-01-01"), _events(range(100, 300), "2024-01-02")]
    )
    assert run_pipeline(clickhouse, [first], loader).success
    again = _events(range(1000, 1050), "2024-01-02", 9.0)
    assert run_pipeline(clickhouse, [again], loader).success

    per_day = clickhouse.query_rows(
        "SELECT toDate(day) AS d, count(), max(value) FROM events GROUP BY d ORDER BY d"
    )
    assert [(str(d), n, v) for d, n, v in per_day] == [
        ("2024-01-01", 100, 1.0),
        ("2024-01-02", 50, 9.0),
    ]


def test_replace_partitions_needs_a_partitioned_table(clickhouse: ClickHouseResource) -> None:
    clickhouse.command("CREATE TABLE plain (id Int64) ENGINE = MergeTree ORDER BY id")
    loader = create_clickhouse_loader("plain", mode="replace_partitions")
    result = run_pipeline(clickhouse, [pd.DataFrame({"id": [1]})], loader)
    assert not result.success
    message = failure_message(result)
    assert "needs a partitioned table" in message
    assert "test_pipeline" in message and "default.plain" in message


def test_upsert_keeps_the_latest_row_per_key(clickhouse: ClickHouseResource) -> None:
    loader = create_clickhouse_loader("users", mode="upsert", key_columns=["id"])
    first = pd.DataFrame({"id": [1, 2, 3], "name": ["ann", "bob", "cy"]})
    second = pd.DataFrame({"id": [2, 3, 4], "name": ["bobby", "cyril", "dee"]})
    assert run_pipeline(clickhouse, [first], loader).success
    assert run_pipeline(clickhouse, [second], loader).success

    rows = clickhouse.query_rows("SELECT id, name FROM users FINAL ORDER BY id")
    assert rows == [(1, "ann"), (2, "bobby"), (3, "cyril"), (4, "dee")]
    engine = clickhouse.query_rows(
        "SELECT engine FROM system.tables WHERE database = 'default' AND name = 'users'"
    )
    assert engine == [("ReplacingMergeTree",)]


def test_upsert_with_optimize_gives_exact_rows_without_final(
    clickhouse: ClickHouseResource,
) -> None:
    loader = create_clickhouse_loader(
        "users", mode="upsert", key_columns=["id"], optimize_after_upsert=True
    )
    assert run_pipeline(clickhouse, [pd.DataFrame({"id": [1, 2], "v": [1, 1]})], loader).success
    assert run_pipeline(clickhouse, [pd.DataFrame({"id": [2], "v": [5]})], loader).success
    assert clickhouse.query_rows("SELECT id, v FROM users ORDER BY id") == [(1, 1), (2, 5)]


def test_upsert_needs_key_columns() -> None:
    from dataproc_dagster.core.errors import ConfigError

    with pytest.raises(ConfigError, match="key_columns"):
        create_clickhouse_loader("users", mode="upsert")


def test_unknown_mode_is_refused() -> None:
    from dataproc_dagster.core.errors import ConfigError

    with pytest.raises(ConfigError, match="append, replace, replace_partitions, upsert"):
        create_clickhouse_loader("users", mode="merge")


def test_chunks_stream_in_several_inserts(clickhouse: ClickHouseResource) -> None:
    loader = create_clickhouse_loader("events", order_by=["id"])
    frames = [_events(range(i * 250, (i + 1) * 250), "2024-01-01") for i in range(8)]
    result = run_pipeline(clickhouse, frames, loader, chunk_rows=300)
    assert result.success
    load = [
        e
        for e in result.all_events
        if e.is_successful_output and e.step_key == "test_pipeline__etl.test_pipeline__load"
    ]
    meta = load[0].event_specific_data.metadata  # type: ignore[union-attr]
    assert meta["rows"].value == 2000
    assert meta["chunks"].value == 7  # 2000 rows in chunks of 300
    assert clickhouse.query_rows("SELECT count(), sum(id) FROM events") == [
        (2000, sum(range(2000)))
    ]


def test_no_rows_and_no_table_is_a_successful_empty_load(clickhouse: ClickHouseResource) -> None:
    result = run_pipeline(clickhouse, [], create_clickhouse_loader("raw.items"))
    assert result.success
    # The asset records the empty load (no table figures: there is no table yet).
    [event] = result.asset_materializations_for_node("test_pipeline__etl")
    assert event.metadata["rows_loaded"].value == 0
    assert "dagster/row_count" not in event.metadata
    assert result.output_for_node("test_pipeline__etl")["rows"] == 0


def test_an_empty_frame_with_columns_creates_the_table(clickhouse: ClickHouseResource) -> None:
    empty = pd.DataFrame({"id": pd.Series([], dtype="int64")})
    assert run_pipeline(clickhouse, [empty], create_clickhouse_loader("raw.items")).success
    assert clickhouse.query_rows("SELECT count() FROM raw.items") == [(0,)]


def test_loader_creates_a_missing_database(clickhouse: ClickHouseResource) -> None:
    result = run_pipeline(
        clickhouse, [_events(range(3), "2024-01-01")], create_clickhouse_loader("raw.items")
    )
    assert result.success
    assert clickhouse.query_rows("SELECT count() FROM raw.items") == [(3,)]
    events = result.asset_materializations_for_node("test_pipeline__etl")
    assert events[0].asset_key.path == ["clickhouse", "raw", "items"]


@pytest.mark.parametrize(
    "engine_reads_files", [True, False], ids=["engine-reads-files", "client-sends"]
)
def test_both_insert_paths_load_the_same_rows_and_refuse_the_same_data(
    clickhouse: ClickHouseResource, tmp_path: object, engine_reads_files: bool
) -> None:
    """Embedded chDB reads Parquet chunks itself; a server gets them through the client."""
    from pathlib import Path

    from dataproc_dagster.core.chunks import ChunkWriter
    from dataproc_dagster.core.errors import SchemaError
    from dataproc_dagster.loading.spec import LoadSpec
    from dataproc_dagster.loading.writer import load_chunkset

    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "qty": pd.array([5, None, 7], dtype="Int64"),
            "name": ["a", None, "c"],
            "at": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 00:00", "2024-01-03 00:00"]),
        }
    )
    spec = LoadSpec(database="default", table="paths", order_by=("id",))
    with ChunkWriter(Path(str(tmp_path)) / "ok", "r/1", chunk_rows=2) as writer:
        writer.write(frame)
    with clickhouse.get_client() as client:
        loaded = load_chunkset(client, writer.close(), spec, engine_reads_files=engine_reads_files)
    assert (loaded.rows, loaded.chunks) == (3, 2)
    rows = clickhouse.query_rows("SELECT id, qty, name, toString(at) FROM paths ORDER BY id")
    assert rows == [
        (1, 5, "a", "2024-01-01 10:00:00.000000"),
        (2, None, None, "2024-01-02 00:00:00.000000"),
        (3, 7, "c", "2024-01-03 00:00:00.000000"),
    ]
    clickhouse.command(
        "CREATE TABLE strict_paths (id Int64, qty Int8) ENGINE = MergeTree ORDER BY id"
    )
    bad = pd.DataFrame({"id": [1, 2], "qty": [1, 300]})
    with ChunkWriter(Path(str(tmp_path)) / "bad", "r/2") as writer:
        writer.write(bad)
    strict = LoadSpec(database="default", table="strict_paths")
    with clickhouse.get_client() as client, pytest.raises(SchemaError, match="row 1 holds 300"):
        load_chunkset(client, writer.close(), strict, engine_reads_files=engine_reads_files)


@pytest.mark.parametrize("folder", ["batches", "glob{chars}"])
def test_engine_reads_chunk_files_in_batches(
    clickhouse: ClickHouseResource,
    tmp_path: object,
    monkeypatch: pytest.MonkeyPatch,
    folder: str,
) -> None:
    """The engine reads several chunk files per INSERT; every file is checked first, and errors
    name the row in the data. A folder whose path holds glob characters (which the engine would
    read as a pattern matching nothing) is sent through the client instead."""
    from pathlib import Path

    from dataproc_dagster.core.chunks import ChunkWriter
    from dataproc_dagster.core.errors import SchemaError
    from dataproc_dagster.core.settings import get_settings
    from dataproc_dagster.loading.files import file_batches
    from dataproc_dagster.loading.spec import LoadSpec
    from dataproc_dagster.loading.writer import load_chunkset

    monkeypatch.setenv("LOAD_INSERT_ROWS", "4")
    get_settings.cache_clear()
    clickhouse.command("CREATE TABLE batched (id Int64, qty Int8) ENGINE = MergeTree ORDER BY id")
    spec = LoadSpec(database="default", table="batched")
    seen: list[tuple[int, int]] = []
    with ChunkWriter(Path(str(tmp_path)) / folder / "ok", "r/1", chunk_rows=2) as w:
        w.write(pd.DataFrame({"id": range(9), "qty": range(9)}))
    chunks = w.close()
    assert [len(batch) for batch in file_batches(chunks, 4)] == [2, 2, 1]
    with clickhouse.get_client() as client:
        loaded = load_chunkset(
            client,
            chunks,
            spec,
            engine_reads_files=True,
            on_chunk=lambda index, rows: seen.append((index, rows)),
        )
    assert (loaded.rows, loaded.chunks) == (9, 5)
    assert seen == [(0, 2), (1, 4), (2, 6), (3, 8), (4, 9)]
    assert clickhouse.query_rows("SELECT count(), sum(id) FROM batched") == [(9, 36)]
    with ChunkWriter(Path(str(tmp_path)) / folder / "bad", "r/2", chunk_rows=2) as w:
        w.write(pd.DataFrame({"id": range(8), "qty": [1, 2, 3, 4, 5, 6, 7, 300]}))
    with clickhouse.get_client() as client, pytest.raises(SchemaError, match="row 7 holds 300"):
        load_chunkset(client, w.close(), spec, engine_reads_files=True)
    assert clickhouse.query_rows("SELECT count() FROM batched") == [(9,)]


@pytest.mark.parametrize("file_format", ["parquet", "arrow-lz4"])
def test_engine_reads_parquet_and_compressed_arrow_chunks(
    clickhouse: ClickHouseResource, tmp_path: object, file_format: str
) -> None:
    """Chunks are uncompressed Arrow IPC by default; LZ4 Arrow files and Parquet files (from
    runs of earlier versions) load the same way, and are checked the same way."""
    import dataclasses
    from pathlib import Path

    import pyarrow.parquet as pq

    from dataproc_dagster.core.chunks import ChunkSet, ChunkWriter, read_chunk
    from dataproc_dagster.core.errors import SchemaError
    from dataproc_dagster.loading.spec import LoadSpec
    from dataproc_dagster.loading.writer import load_chunkset

    def chunks_of(frame: pd.DataFrame, name: str) -> ChunkSet:
        compression = "lz4" if file_format == "arrow-lz4" else None
        with ChunkWriter(Path(str(tmp_path)) / name, f"r/{name}", compression=compression) as w:
            w.write(frame)
        chunks = w.close()
        if file_format != "parquet":
            return chunks
        for path in chunks.paths():
            pq.write_table(read_chunk(path), path.with_suffix(".parquet"))
            path.unlink()
        files = tuple(f.replace(".arrow", ".parquet") for f in chunks.files)
        return dataclasses.replace(chunks, files=files)

    good = chunks_of(pd.DataFrame({"id": [1, 2], "qty": [3, None]}), "good")
    assert good.file_format == ("Parquet" if file_format == "parquet" else "Arrow")
    clickhouse.command(
        "CREATE TABLE fmt_paths (id Int64, qty Nullable(Int8)) ENGINE = MergeTree ORDER BY id"
    )
    spec = LoadSpec(database="default", table="fmt_paths")
    with clickhouse.get_client() as client:
        loaded = load_chunkset(client, good, spec, engine_reads_files=True)
    assert loaded.rows == 2
    assert clickhouse.query_rows("SELECT id, qty FROM fmt_paths ORDER BY id") == [
        (1, 3),
        (2, None),
    ]
    bad = chunks_of(pd.DataFrame({"id": [1, 2], "qty": [1, 300]}), "bad")
    with clickhouse.get_client() as client, pytest.raises(SchemaError, match="row 1 holds 300"):
        load_chunkset(client, bad, spec, engine_reads_files=True)


def test_arrow_transformer_gets_and_returns_arrow_tables(clickhouse: ClickHouseResource) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from dataproc_dagster import create_transformer

    seen: list[str] = []

    def doubled(table: pa.Table) -> pa.Table:
        seen.append(type(table).__name__)
        return table.append_column("double", pc.multiply(table.column("value"), 2))

    def wrong(table: pa.Table) -> pd.DataFrame:
        return table.to_pandas()

    loader = create_clickhouse_loader("arrow_t", mode="replace", order_by=["id"])
    result = run_pipeline(
        clickhouse,
        [_events(range(3), "2024-01-01", 1.5), _events(range(3, 5), "2024-01-02", 2.0)],
        loader,
        transformers=[create_transformer(doubled, arrow=True)],
        chunk_rows=3,
    )
    assert result.success
    assert seen == ["Table", "Table"]
    assert clickhouse.query_rows("SELECT id, double FROM arrow_t ORDER BY id") == [
        (0, 3.0),
        (1, 3.0),
        (2, 3.0),
        (3, 4.0),
        (4, 4.0),
    ]
    failed = run_pipeline(
        clickhouse,
        [_events(range(3), "2024-01-01")],
        loader,
        name="arrow_wrong",
        transformers=[create_transformer(wrong, arrow=True)],
    )
    assert not failed.success
    assert "returned DataFrame, not an Arrow table" in failure_message(failed)
