"""Arrow -> ClickHouse DDL mapping, per shared/reference/clickhouse.md section 4."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from dataproc_dagster.clickhouse.types import ColumnType, arrow_to_clickhouse
from dataproc_dagster.core.errors import SchemaError


@pytest.mark.parametrize(
    ("series", "nullable", "expected"),
    [
        (pd.Series([1, 2], dtype="int32"), False, "Int32"),
        (pd.Series([1, None], dtype="Int64"), True, "Nullable(Int64)"),
        (pd.Series([1.5]), False, "Float64"),
        (pd.Series([True]), False, "Bool"),
        (pd.Series(["a"]), True, "Nullable(String)"),
        (pd.Series(pd.to_datetime(["2024-01-01"])), False, "DateTime64(6, 'UTC')"),
        (
            pd.Series(pd.to_datetime(["2024-01-01"]).tz_localize("Europe/Berlin")),
            False,
            "DateTime64(6, 'Europe/Berlin')",
        ),
        (pd.Series(["x", "y"], dtype="category"), False, "LowCardinality(String)"),
        (pd.Series(["x", None], dtype="category"), True, "LowCardinality(Nullable(String))"),
        (pd.Series([pd.Timestamp("2024-01-01").date()]), False, "Date32"),
        (pd.Series([[1, 2], [3]]), False, "Array(Int64)"),
    ],
)
def test_mapping(series: pd.Series, nullable: bool, expected: str) -> None:
    field = pa.Table.from_pandas(series.to_frame("c"), preserve_index=False).schema.field("c")
    assert arrow_to_clickhouse(field, nullable=nullable) == expected


def test_struct_columns_are_refused_with_a_fix() -> None:
    field = pa.field("payload", pa.struct([("a", pa.int64())]))
    with pytest.raises(SchemaError, match="JSON-encode column 'payload'"):
        arrow_to_clickhouse(field, nullable=False)


def test_column_type_parsing() -> None:
    enum = ColumnType("Enum8('new' = 1, 'it''s' = 2)")
    assert enum.family == "enum" and "new" in enum.enum_labels
    assert ColumnType("LowCardinality(Nullable(String))").nullable
    assert ColumnType("LowCardinality(Nullable(String))").base == "String"
    assert ColumnType("UInt8").int_bounds == (0, 255)
    assert ColumnType("Int32").int_bounds == (-(2**31), 2**31 - 1)
    assert ColumnType("DateTime64(3, 'UTC')").family == "datetime"
