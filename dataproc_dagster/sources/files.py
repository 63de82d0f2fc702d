"""The file extractor: CSV or Parquet files read in chunks."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dataproc_dagster.core.errors import SourceError
from dataproc_dagster.pipeline.contracts import StepContext
from dataproc_dagster.pipeline.window import render_window, template_fields

FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class FileExtractor:
    """Extractor spec; build it with :func:`create_file_extractor`."""

    path: str
    format: str = "csv"
    chunk_rows: int = 100_000
    read_options: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "file"
    required_resource_keys: frozenset[str] = field(default=frozenset())
    config_schema: Any = None

    def describe(self) -> str:
        """The file and its format."""
        return f"{self.format} file {self.path}"

    def extract(self, ctx: StepContext) -> Iterator[pd.DataFrame | pa.Table]:
        """Read the file chunk by chunk; a path pattern is filled from the partition window."""
        path = Path(self.path)
        if template_fields(self.path, option="file extractor path"):
            filled = render_window(ctx.window, {"path": self.path}, option="file extractor path")
            path = Path(filled["path"])
            ctx.metadata["path"] = str(path)
        if not path.is_file():
            raise SourceError(
                "the file does not exist" + (f": {path}" if str(path) != self.path else ""),
                source=self.describe(),
                fix="check the path (relative paths are read from the working directory)",
            )
        if self.format == "parquet":
            for batch in pq.ParquetFile(path).iter_batches(batch_size=self.chunk_rows):
                yield pa.Table.from_batches([batch])
            return
        try:
            with pd.read_csv(path, chunksize=self.chunk_rows, **dict(self.read_options)) as reader:
                yield from reader
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise SourceError(
                f"the CSV cannot be parsed: {exc}",
                source=self.describe(),
                fix="check the delimiter / encoding (read_options) and the file's content",
            ) from exc


def create_file_extractor(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    chunk_rows: int = 100_000,
    read_options: Mapping[str, Any] | None = None,
) -> FileExtractor:
    """Extract rows from a CSV or Parquet file, in chunks.

    Args:
        path: The file; in a partitioned pipeline a pattern filled from the window, e.g.
            ``exports/orders_{start:%Y-%m-%d}.csv`` (``{start}``, ``{end}``, ``{key}``).
        format: ``csv`` or ``parquet`` (default: from the file's suffix).
        chunk_rows: Rows per chunk read.
        read_options: Extra keyword arguments of ``pandas.read_csv`` (CSV only).
    """
    template_fields(str(path), option="file extractor path")
    fmt = (format or Path(path).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise SourceError(
            f"unsupported file format {fmt!r}",
            source=str(path),
            fix=f"use one of {', '.join(FORMATS)} or pass format=...",
        )
    return FileExtractor(
        path=str(path), format=fmt, chunk_rows=chunk_rows, read_options=dict(read_options or {})
    )
