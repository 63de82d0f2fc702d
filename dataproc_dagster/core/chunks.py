"""The data-flow contract between ops: chunked, columnar data in Arrow IPC files.

An extract, transform or ELT op never passes a DataFrame to the next op. It writes its rows
as Arrow IPC chunks (``part-00000.arrow``, ...) into a folder of the run and outputs a small
:class:`ChunkSet` that names the files. The next op reads one chunk at a time, so a step's
memory depends on the chunk size, not on the row count, and ops can run in other processes.

Arrow IPC files are the in-memory layout written as is: writing costs little more than a
copy, reading is a memory map (no decode), and the ClickHouse engine reads them with
``file(..., 'Arrow')``. Parquet chunks (written by earlier versions) are still read.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dataproc_dagster.core import chunk_store
from dataproc_dagster.core.errors import SchemaError, SourceError

DEFAULT_CHUNK_ROWS = 100_000
CHUNK_SUFFIX = ".arrow"
# Uncompressed by default: measured per 1M rows (CPU s), write 0.05-0.2 / read 0.002 / engine
# insert 0.37, against Parquet+LZ4 0.24 / 0.12-0.56 / 0.52; the price is disk (81 MB against
# 23 MB per 1M rows of the benchmark's table) for files that live one run. "lz4" or "zstd"
# trade some CPU for 2.5-5x less disk.
DEFAULT_COMPRESSION: str | None = None

Chunk: TypeAlias = pd.DataFrame | pa.Table | pa.RecordBatch


@dataclass(frozen=True)
class ReplacedWindow:
    """The partitions of the target a load replaces as a whole, rows or not: the run's time
    window under ``replace_partitions``. A partition of the window the data has no rows for is
    emptied, so a day whose source now returns nothing does not keep its old rows.

    Attributes:
        column: The rows' time column (the target's ``PARTITION BY`` is derived from it).
        timezone: The partitions' time zone.
        starts_us: The start of each partition of the window, in microseconds since the epoch.
    """

    column: str
    timezone: str
    starts_us: tuple[int, ...]


@dataclass(frozen=True)
class ChunkSet:
    """Handle to the chunks one op produced; cheap to pickle between ops.

    Attributes:
        directory: Folder holding the chunk files (Arrow IPC, or Parquet from older runs).
        files: File names in order.
        rows: Total row count.
        schema_bytes: The Arrow schema every chunk is read with (serialized).
        dataset_id: Stable identity of this data (``run_id/step``): a retried or re-executed
            load of the same data keeps it, and the load ledger knows the data by it.
        source: Human-readable description of where the rows came from.
        chunk_rows: Row counts per file, in order.
        nullable_columns: Columns that hold at least one null.
        uniform: Every file already has exactly :attr:`schema` (so other readers, such as the
            ClickHouse engine, can read the files as they are).
        window: What part of the source the rows are, when the source read a window (an
            incremental lower bound); part of the identity of the load of these rows.
        store_url: Where the files are in the chunk store (``s3://...``, see
            :mod:`~dataproc_dagster.core.chunk_store`), or ``""`` when they stay in
            :attr:`directory`.
        replaces: The partitions of the target these rows replace as a whole (a partitioned
            run's window under ``replace_partitions``), or ``None``.
    """

    directory: str
    files: tuple[str, ...]
    rows: int
    schema_bytes: bytes | None
    dataset_id: str
    source: str = ""
    chunk_rows: tuple[int, ...] = field(default=())
    nullable_columns: frozenset[str] = field(default=frozenset())
    uniform: bool = True
    window: str = ""
    store_url: str = ""
    replaces: ReplacedWindow | None = None

    @property
    def schema(self) -> pa.Schema | None:
        """The Arrow schema of the data, or ``None`` when no chunk was written."""
        if self.schema_bytes is None:
            return None
        return pa.ipc.read_schema(pa.py_buffer(self.schema_bytes))

    @property
    def columns(self) -> list[str]:
        """Column names, in order."""
        schema = self.schema
        return [] if schema is None else list(schema.names)

    @property
    def chunk_count(self) -> int:
        """Number of chunk files."""
        return len(self.files)

    def paths(self) -> list[Path]:
        """Absolute paths of the chunk files, in order (downloaded from the store if needed)."""
        folder = Path(self.directory)
        if self.store_url:
            folder = chunk_store.fetch_folder(self.store_url, folder, self.files)
        return [folder / name for name in self.files]

    def published(self) -> ChunkSet:
        """This set with its files moved to the chunk store, when ``CHUNK_STORE`` names one."""
        url = chunk_store.upload_folder(Path(self.directory), self.files)
        return replace(self, store_url=url) if url else self

    def iter_tables(self) -> Iterator[pa.Table]:
        """Yield each chunk as an Arrow table conforming to :attr:`schema`."""
        schema = self.schema
        for path in self.paths():
            if not path.exists():
                raise SourceError(
                    f"chunk file {path.name} of {self.dataset_id} is gone",
                    source=str(path.parent),
                    fix="the chunks of a run are removed once it has loaded them (and after 7 days "
                    "for failed runs); run the whole job again instead of re-executing this step",
                )
            table = read_chunk(path)
            yield table if schema is None else conform(table, schema, where=str(path))

    @property
    def file_format(self) -> str:
        """The ClickHouse input format of the files: ``Arrow`` or ``Parquet``."""
        return "Parquet" if any(f.endswith(".parquet") for f in self.files) else "Arrow"

    def iter_frames(self) -> Iterator[pd.DataFrame]:
        """Yield each chunk as a pandas DataFrame."""
        for table in self.iter_tables():
            yield arrow_to_pandas(table)

    def to_pandas(self) -> pd.DataFrame:
        """Read every chunk into one DataFrame. Meant for tests and small data only."""
        frames = list(self.iter_frames())
        if not frames:
            schema = self.schema
            return pd.DataFrame(columns=[] if schema is None else schema.names)
        return pd.concat(frames, ignore_index=True)


def read_chunk(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read one chunk file; an Arrow IPC file is memory-mapped, not copied."""
    if path.suffix == ".parquet":
        return pq.read_table(path, columns=columns)
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    return table if columns is None else table.select(columns)


_NULLABLE_DTYPES: dict[pa.DataType, object] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}
# Strings stay Arrow-backed (``string[pyarrow]``, pandas 3's default string type): no copy into
# Python objects and back, which is most of a transform step's cost on text-heavy data.
_STRING_DTYPE = pd.StringDtype("pyarrow")
_STRING_TYPES = {pa.string(): _STRING_DTYPE, pa.large_string(): _STRING_DTYPE}


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Convert an Arrow table to pandas for user code.

    Strings become ``string[pyarrow]``; integer and boolean columns that hold nulls become the
    nullable ``Int64`` / ``boolean`` types instead of floats and objects.
    """
    nullable = {
        name
        for name, column in zip(table.column_names, table.columns, strict=True)
        if column.null_count > 0 and column.type in _NULLABLE_DTYPES
    }
    frame = table.to_pandas(types_mapper=_STRING_TYPES.get, split_blocks=True)
    for name in nullable:
        frame[name] = table.column(name).to_pandas(types_mapper=_NULLABLE_DTYPES.get)
    return frame


def to_arrow(data: Chunk, *, where: str = "") -> pa.Table:
    """Convert a chunk to an Arrow table, naming the column that cannot be converted."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if not isinstance(data, pd.DataFrame):
        raise SchemaError(
            f"a chunk must be a pandas DataFrame or an Arrow table, got {type(data).__name__}",
            source=where or None,
            fix="return or yield DataFrames from the extractor / transformer function",
        )
    frame = data
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.rename(columns=str)
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        for name in frame.columns:
            try:
                pa.Table.from_pandas(frame[[name]], preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as col_exc:
                raise SchemaError(
                    f"column {name!r} holds values of mixed or unsupported types ({col_exc})",
                    source=where or None,
                    fix=f"cast column {name!r} to one type (e.g. .astype(str)) before loading",
                ) from exc
        raise SchemaError(str(exc), source=where or None) from exc


def _merge_type(name: str, old: pa.DataType, new: pa.DataType, where: str) -> pa.DataType:
    if old == new or pa.types.is_null(new):
        return old
    if pa.types.is_null(old):
        return new
    if pa.types.is_integer(old) and pa.types.is_floating(new):
        return new
    if pa.types.is_floating(old) and pa.types.is_integer(new):
        return old
    if pa.types.is_integer(old) and pa.types.is_integer(new):
        return pa.int64()
    if pa.types.is_floating(old) and pa.types.is_floating(new):
        return pa.float64()
    if _is_string(old) and _is_string(new):
        return pa.large_string() if pa.types.is_large_string(new) else old
    if pa.types.is_timestamp(old) and pa.types.is_timestamp(new) and old.tz == new.tz:
        return pa.timestamp("ns", old.tz) if old.unit != new.unit else old
    raise SchemaError(
        f"field {name!r} changes type between chunks: {old} before, {new} now",
        source=where or None,
        fix=f"make field {name!r} one type in the source, or cast it in a transformer",
    )


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _same_columns(a: pa.Schema, b: pa.Schema | None) -> bool:
    """Same names and types in the same order (nullability flags aside)."""
    return b is not None and a.names == b.names and a.types == b.types


def merge_schemas(old: pa.Schema | None, new: pa.Schema, where: str = "") -> pa.Schema:
    """Widen ``old`` so that it also holds ``new``: nulls take a type, ints become floats.

    Raises:
        SchemaError: When a field has incompatible types (e.g. string and integer).
    """
    if old is None:
        return new
    fields = []
    new_by_name = {f.name: f for f in new}
    for f in old:
        if f.name in new_by_name:
            fields.append(
                pa.field(f.name, _merge_type(f.name, f.type, new_by_name[f.name].type, where))
            )
        else:
            fields.append(f)
    old_names = set(old.names)
    fields.extend(f for f in new if f.name not in old_names)
    return pa.schema(fields)


def conform(table: pa.Table, schema: pa.Schema, *, where: str = "") -> pa.Table:
    """Return ``table`` with exactly the columns and types of ``schema`` (missing ones null)."""
    if table.schema.equals(schema):
        return table
    columns = []
    for f in schema:
        if f.name in table.column_names:
            column = table.column(f.name)
            if column.type != f.type:
                try:
                    column = column.cast(f.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SchemaError(
                        f"field {f.name!r} cannot be read as {f.type}: {exc}",
                        source=where or None,
                        fix=f"make field {f.name!r} one type in the source",
                    ) from exc
            columns.append(column)
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


class ChunkWriter:
    """Write chunks of any size as Arrow IPC files of about ``chunk_rows`` rows each.

    Use as a context manager; :meth:`close` returns the :class:`ChunkSet`. If the block raises,
    the partial files are removed so that nothing half-written is passed on.

    Args:
        directory: Folder for the files; created, and emptied if it holds older chunks.
        dataset_id: Stable identity of this data, see :class:`ChunkSet`.
        chunk_rows: Target rows per file.
        source: Description of the source, used in error messages.
        compression: ``None`` (default, fastest), ``"lz4"`` or ``"zstd"`` (less disk).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        dataset_id: str,
        *,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        source: str = "",
        compression: str | None = DEFAULT_COMPRESSION,
    ) -> None:
        if chunk_rows <= 0:
            raise ValueError("chunk_rows must be positive")
        self.directory = Path(directory)
        self.dataset_id = dataset_id
        self.chunk_rows = chunk_rows
        self.source = source
        self._options = pa.ipc.IpcWriteOptions(compression=compression)
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._files: list[str] = []
        self._counts: list[int] = []
        self._schema: pa.Schema | None = None
        self._nullable: set[str] = set()
        self._file_columns: list[frozenset[str]] = []
        self._file_schemas: list[pa.Schema] = []
        self._closed = False
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def rows(self) -> int:
        """Rows accepted so far (written or buffered)."""
        return sum(self._counts) + self._buffered

    def write(self, data: Chunk) -> None:
        """Accept a chunk of any size; files are written as ``chunk_rows`` fill up."""
        table = to_arrow(data, where=self.source)
        if table.num_rows == 0 and self._schema is not None:
            return
        self._schema = merge_schemas(self._schema, table.schema, self.source)
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffered += table.num_rows
        while self._buffered >= self.chunk_rows:
            self._flush(self.chunk_rows)

    def _flush(self, rows: int) -> None:
        assert self._schema is not None
        tables = [conform(t, self._schema, where=self.source) for t in self._buffer]
        combined = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        head, tail = combined.slice(0, rows), combined.slice(rows)
        self._nullable.update(
            name
            for name, col in zip(head.column_names, head.columns, strict=True)
            if col.null_count
        )
        self._file_columns.append(frozenset(head.column_names))
        self._file_schemas.append(head.schema)
        name = f"part-{len(self._files):05d}{CHUNK_SUFFIX}"
        tmp = self.directory / (name + ".tmp")
        with pa.ipc.new_file(tmp, head.schema, options=self._options) as sink:
            sink.write_table(head, max_chunksize=max(rows, 1))
        tmp.rename(self.directory / name)
        self._files.append(name)
        self._counts.append(head.num_rows)
        self._buffer = [tail] if tail.num_rows else []
        self._buffered = tail.num_rows

    def close(self) -> ChunkSet:
        """Flush what is buffered and return the :class:`ChunkSet`."""
        if not self._closed:
            if self._buffered:
                self._flush(self._buffered)
            self._closed = True
        return ChunkSet(
            directory=str(self.directory),
            files=tuple(self._files),
            rows=sum(self._counts),
            schema_bytes=None if self._schema is None else self._schema.serialize().to_pybytes(),
            dataset_id=self.dataset_id,
            source=self.source,
            chunk_rows=tuple(self._counts),
            nullable_columns=frozenset(self._nullable | self._columns_missing_somewhere()),
            uniform=all(_same_columns(s, self._schema) for s in self._file_schemas),
        )

    def _columns_missing_somewhere(self) -> set[str]:
        # A column that appeared after the first files is read back as nulls there.
        if self._schema is None:
            return set()
        return {n for n in self._schema.names if any(n not in cols for cols in self._file_columns)}

    def discard(self) -> None:
        """Remove every file written so far."""
        self._buffer, self._buffered, self._files, self._counts = [], 0, [], []
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.discard()
        elif not self._closed:
            self.close()
