"""Checks a chunk against the target table before it is inserted.

clickhouse-connect and ClickHouse store some values wrongly without a word (NULL as 0 or '',
floats rounded into integers, unknown Enum labels as code 0). These checks reject such data
with the table, column, row and value, so nothing is changed in silence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataproc_dagster.clickhouse.tables import TableInfo
from dataproc_dagster.clickhouse.types import (
    COMPATIBLE,
    ColumnType,
    arrow_family,
    arrow_to_clickhouse,
)
from dataproc_dagster.core.chunks import read_chunk
from dataproc_dagster.core.errors import SchemaError
from dataproc_dagster.core.modes import DriftPolicy


@dataclass
class DriftPlan:
    """What to do with columns of the data that the table lacks."""

    add: list[str] = field(default_factory=list)  # column DDL for ALTER TABLE ADD COLUMN
    drop: list[str] = field(default_factory=list)  # names removed from every chunk


def plan_drift(
    schema: pa.Schema, info: TableInfo, policy: DriftPolicy, nullable_columns: set[str]
) -> DriftPlan:
    """Decide how to handle extra columns under ``policy``.

    Raises:
        SchemaError: Under ``freeze`` when the data has columns the table lacks.
    """
    known = info.column_types
    extra = [f for f in schema if f.name not in known]
    plan = DriftPlan()
    if not extra:
        return plan
    names = ", ".join(f"{f.name} ({f.type})" for f in extra)
    if policy == DriftPolicy.FREEZE:
        raise SchemaError(
            f"the data has columns that table {info.database}.{info.name} lacks: {names}",
            source=f"{info.database}.{info.name}",
            fix="add them with a migration, drop them in a transformer, or set "
            "schema_drift='evolve' (add columns) or 'discard' (drop them)",
        )
    if policy == DriftPolicy.EVOLVE:
        plan.add = [f"`{f.name}` {arrow_to_clickhouse(f, nullable=True)}" for f in extra]
    else:
        plan.drop = [f.name for f in extra]
    del nullable_columns
    return plan


def _first(table: pa.Table, name: str, mask: pa.ChunkedArray | pa.Array) -> tuple[int, Any]:
    index = pc.index(mask, True).as_py()
    return index, table.column(name)[index].as_py()


def check_chunk(table: pa.Table, info: TableInfo, *, row_offset: int = 0) -> None:
    """Reject values the insert would store wrongly.

    Args:
        table: The chunk, already without discarded columns.
        info: The target table.
        row_offset: Rows before this chunk, so that row numbers count from the load's start.

    Raises:
        SchemaError: Naming table, column, row and value (or expected and found types).
    """
    where = f"{info.database}.{info.name}"
    types = info.column_types
    for name in table.column_names:
        ctype: ColumnType | None = types.get(name)
        if ctype is None:
            continue
        column = table.column(name)
        found = arrow_family(column.type)
        if found not in COMPATIBLE.get(ctype.family, set()):
            raise SchemaError(
                f"column {name!r}: table type {ctype.raw} (expected {ctype.family}) but the data "
                f"is {column.type} ({found})",
                source=where,
                fix=f"cast column {name!r} in a transformer, or change the table with a migration",
            )
        if column.null_count and not ctype.nullable and ctype.family != "array":
            index, _ = _first(table, name, pc.is_null(column))
            raise SchemaError(
                f"column {name!r} is {ctype.raw} (not Nullable) but row {row_offset + index} is "
                f"NULL; ClickHouse would store a default value instead",
                source=where,
                fix=f"fill the NULLs of {name!r} in a transformer, or make it Nullable "
                "with a migration",
            )
        if ctype.family == "int" and pa.types.is_floating(column.type):
            fractional = pc.fill_null(pc.not_equal(column, pc.floor(column)), False)
            if pc.any(fractional).as_py():
                index, value = _first(table, name, fractional)
                raise SchemaError(
                    f"column {name!r} is {ctype.raw} but row {row_offset + index} holds {value!r}, "
                    "which has a fraction; ClickHouse would round it",
                    source=where,
                    fix=f"round column {name!r} explicitly or store it in a Float column",
                )
        if ctype.family == "int" and found in ("int", "float"):
            bounds = ctype.int_bounds
            if bounds and len(column) - column.null_count:
                low, high = pc.min_max(column).values()
                if low.as_py() < bounds[0] or high.as_py() > bounds[1]:
                    bad = pc.fill_null(
                        pc.or_(pc.less(column, bounds[0]), pc.greater(column, bounds[1])), False
                    )
                    index, value = _first(table, name, bad)
                    raise SchemaError(
                        f"column {name!r} is {ctype.raw} but row {row_offset + index} holds "
                        f"{value!r}, outside {bounds[0]}..{bounds[1]}",
                        source=where,
                        fix=f"widen column {name!r} with a migration",
                    )
        if ctype.family == "enum":
            labels = ctype.enum_labels
            values = column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column
            unknown = pc.fill_null(pc.invert(pc.is_in(values, pa.array(sorted(labels)))), False)
            if pc.any(unknown).as_py():
                index, value = _first(table, name, unknown)
                raise SchemaError(
                    f"column {name!r} is {ctype.raw} but row {row_offset + index} holds {value!r}, "
                    f"not one of its labels {sorted(labels)}",
                    source=where,
                    fix=f"map the value in a transformer, or add the label to {name!r} "
                    "with a migration",
                )


def check_file(path: Path, columns: list[str], info: TableInfo, *, row_offset: int = 0) -> int:
    """:func:`check_chunk` for a chunk file, reading only the columns that need their values.

    Types come from the file's schema, null counts and integer ranges from its statistics
    (Parquet) or its memory-mapped arrays (Arrow IPC); a column's values are checked only when
    those cannot settle it (floats into integers, Enum labels, nulls into a non-Nullable
    column, whose row is then named). Returns the file's row count.
    """
    read: Callable[[list[str]], pa.Table]
    if path.suffix == ".parquet":
        parquet = pq.ParquetFile(path)
        schema, rows = parquet.schema_arrow, int(parquet.metadata.num_rows)
        stats = _column_statistics(parquet)

        def read(names: list[str]) -> pa.Table:
            return pq.read_table(path, columns=names)

    else:
        table = read_chunk(path)
        schema, rows, read = table.schema, table.num_rows, table.select
        stats = _arrow_statistics(table, columns)
    types = info.column_types
    needed = []
    for name in columns:
        ctype = types.get(name)
        if ctype is None:
            continue
        found = arrow_family(schema.field(name).type)
        nulls, low, high = stats.get(name, (None, None, None))
        bounds = ctype.int_bounds
        if (
            ctype.family == "enum"
            or (ctype.family == "int" and found == "float")
            or (nulls != 0 and not ctype.nullable and ctype.family != "array")
            or (
                ctype.family == "int"
                and found == "int"
                and bounds is not None
                and (low is None or high is None or low < bounds[0] or high > bounds[1])
            )
        ):
            needed.append(name)
    empty = pa.Table.from_batches([], schema=pa.schema([schema.field(n) for n in columns]))
    check_chunk(empty, info, row_offset=row_offset)  # types of every column, from the schema
    if needed:
        check_chunk(read(needed), info, row_offset=row_offset)
    return rows


def _arrow_statistics(
    table: pa.Table, columns: list[str]
) -> dict[str, tuple[int | None, Any, Any]]:
    """Null count of each column and min / max of integer columns (None: not computed)."""
    found: dict[str, tuple[int | None, Any, Any]] = {}
    for name in columns:
        column = table.column(name)
        low = high = None
        if pa.types.is_integer(column.type) and len(column) > column.null_count:
            low, high = (v.as_py() for v in pc.min_max(column).values())
        found[name] = (column.null_count, low, high)
    return found


def _column_statistics(parquet: pq.ParquetFile) -> dict[str, tuple[int | None, Any, Any]]:
    """Null count, min and max of each top-level column over all row groups (None: unknown)."""
    meta = parquet.metadata
    found: dict[str, tuple[int | None, Any, Any]] = {}
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            name = chunk.path_in_schema
            if "." in name:
                continue
            st = chunk.statistics
            nulls = st.null_count if st is not None and st.has_null_count else None
            low = st.min if st is not None and st.has_min_max else None
            high = st.max if st is not None and st.has_min_max else None
            if name in found:
                old_nulls, old_low, old_high = found[name]
                nulls = None if nulls is None or old_nulls is None else nulls + old_nulls
                low = None if low is None or old_low is None else min(low, old_low)
                high = None if high is None or old_high is None else max(high, old_high)
            found[name] = (nulls, low, high)
    return found
