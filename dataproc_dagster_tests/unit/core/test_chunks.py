"""The chunk contract: re-chunking, schema widening, clear errors, nothing half-written."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from dataproc_dagster.core.chunks import ChunkWriter
from dataproc_dagster.core.errors import SchemaError


def test_rows_are_rechunked_to_the_target_size(tmp_path: Path) -> None:
    with ChunkWriter(tmp_path / "c", "run/step", chunk_rows=400) as writer:
        for start in range(0, 1000, 150):
            writer.write(pd.DataFrame({"n": range(start, min(start + 150, 1000))}))
    chunks = writer.close()
    assert chunks.rows == 1000
    assert chunks.chunk_rows == (400, 400, 200)
    assert chunks.to_pandas()["n"].tolist() == list(range(1000))
    assert len(pickle.dumps(chunks)) < 2000  # only a handle travels between steps


def test_types_widen_across_chunks(tmp_path: Path) -> None:
    with ChunkWriter(tmp_path / "c", "r/s", chunk_rows=2) as writer:
        writer.write(pd.DataFrame({"a": [1, 2], "b": [None, None]}))
        writer.write(pd.DataFrame({"a": [2.5, 3.0], "b": ["x", None], "c": [True, False]}))
    chunks = writer.close()
    assert chunks.schema is not None
    assert str(chunks.schema.field("a").type) == "double"
    assert str(chunks.schema.field("b").type) == "string"
    frame = chunks.to_pandas()
    assert frame["a"].tolist() == [1.0, 2.0, 2.5, 3.0]
    assert frame["c"].isna().tolist() == [True, True, False, False]
    assert chunks.nullable_columns == {"b", "c"}


def test_incompatible_types_across_chunks_name_the_field(tmp_path: Path) -> None:
    writer = ChunkWriter(tmp_path / "c", "r/s", source="page 3 of https://api/x")
    writer.write(pd.DataFrame({"price": [1, 2]}))
    with pytest.raises(SchemaError) as raised:
        writer.write(pd.DataFrame({"price": ["cheap"]}))
    assert "'price'" in str(raised.value) and "page 3 of https://api/x" in str(raised.value)


def test_mixed_object_column_names_the_column(tmp_path: Path) -> None:
    writer = ChunkWriter(tmp_path / "c", "r/s")
    with pytest.raises(SchemaError, match="column 'v'"):
        writer.write(pd.DataFrame({"ok": [1, 2], "v": ["a", 1]}))


def test_failure_inside_the_block_removes_partial_files(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    with pytest.raises(RuntimeError), ChunkWriter(directory, "r/s", chunk_rows=1) as writer:
        writer.write(pd.DataFrame({"n": [1, 2, 3]}))
        raise RuntimeError("source died")
    assert not directory.exists()


def test_nullable_integers_read_back_as_nullable(tmp_path: Path) -> None:
    with ChunkWriter(tmp_path / "c", "r/s") as writer:
        writer.write(pa.table({"n": pa.array([1, None, 3], pa.int64())}))
    frame = writer.close().to_pandas()
    assert str(frame["n"].dtype) == "Int64"
    assert frame["n"].isna().tolist() == [False, True, False]


def test_missing_chunk_file_says_what_to_do(tmp_path: Path) -> None:
    from dataproc_dagster.core.errors import SourceError

    with ChunkWriter(tmp_path / "c", "run-9/extract") as writer:
        writer.write(pd.DataFrame({"n": [1]}))
    chunks = writer.close()
    chunks.paths()[0].unlink()
    with pytest.raises(SourceError, match="run the whole job again"):
        list(chunks.iter_tables())


def test_old_run_folders_are_pruned(data_dir: Path) -> None:
    import os
    import time

    from dataproc_dagster.pipeline.steps import prune_old_chunks

    old, recent = data_dir / "runs" / "old-run", data_dir / "runs" / "recent-run"
    old.mkdir(parents=True)
    recent.mkdir(parents=True)
    ten_days_ago = time.time() - 10 * 86_400
    os.utime(old, (ten_days_ago, ten_days_ago))
    assert prune_old_chunks() == ["old-run"]
    assert recent.exists() and not old.exists()


def test_nullability_flags_do_not_make_chunks_non_uniform(tmp_path: Path) -> None:
    """chDB marks columns NOT NULL in its Arrow batches; the engine can still read the files."""
    strict = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    with ChunkWriter(tmp_path / "c", "r/s", chunk_rows=2) as writer:
        for start in (0, 2, 4):
            writer.write(pa.table({"id": [start, start + 1]}, schema=strict))
    chunks = writer.close()
    assert chunks.uniform and chunks.chunk_count == 3


def test_widened_types_make_chunks_non_uniform(tmp_path: Path) -> None:
    with ChunkWriter(tmp_path / "c", "r/s", chunk_rows=2) as writer:
        writer.write(pd.DataFrame({"a": [1, 2]}))
        writer.write(pd.DataFrame({"a": [2.5, 3.5]}))
    assert not writer.close().uniform
