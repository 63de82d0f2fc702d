"""Type mapping between Arrow / pandas chunks and ClickHouse columns.

The rules follow the measured behaviour in ``shared/reference/clickhouse.md`` section 4: naive
datetimes become ``DateTime64(6, 'UTC')`` (never a bare ``DateTime``), columns that hold nulls
become ``Nullable``, pandas categories become ``LowCardinality(String)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from dataproc_dagster.core.errors import SchemaError

_INTS = {
    pa.int8(): "Int8",
    pa.int16(): "Int16",
    pa.int32(): "Int32",
    pa.int64(): "Int64",
    pa.uint8(): "UInt8",
    pa.uint16(): "UInt16",
    pa.uint32(): "UInt32",
    pa.uint64(): "UInt64",
}


def arrow_to_clickhouse(field: pa.Field, *, nullable: bool) -> str:
    """The ClickHouse column type for an Arrow field.

    Args:
        field: The Arrow field.
        nullable: Whether the column holds (or may hold) nulls.

    Raises:
        SchemaError: For types with no faithful ClickHouse column (structs, maps, ...).
    """
    t = field.type
    if pa.types.is_dictionary(t):
        inner = arrow_to_clickhouse(pa.field(field.name, t.value_type), nullable=nullable)
        return f"LowCardinality({inner})" if _base(inner) == "String" else inner
    base = _scalar_type(field.name, t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return base  # Array columns cannot be Nullable in ClickHouse
    return f"Nullable({base})" if nullable else base


def _scalar_type(name: str, t: pa.DataType) -> str:
    if t in _INTS:
        return _INTS[t]
    if pa.types.is_float32(t):
        return "Float32"
    if pa.types.is_floating(t):
        return "Float64"
    if pa.types.is_boolean(t):
        return "Bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return "String"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "String"
    if pa.types.is_timestamp(t):
        return f"DateTime64(6, '{t.tz or 'UTC'}')"
    if pa.types.is_date(t):
        return "Date32"
    if pa.types.is_decimal(t):
        return f"Decimal({t.precision}, {t.scale})"
    if pa.types.is_duration(t):
        return "Int64"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _scalar_type(name, t.value_type)
        return f"Array({inner})"
    raise SchemaError(
        f"column {name!r} has Arrow type {t}, which has no ClickHouse column type here",
        fix=f"flatten or JSON-encode column {name!r} in a transformer",
    )


_WRAPPERS = re.compile(r"^(?:LowCardinality|Nullable)\((.*)\)$")


def _base(ch_type: str) -> str:
    """``Nullable(LowCardinality(String))`` -> ``String``."""
    inner = ch_type.strip()
    while True:
        match = _WRAPPERS.match(inner)
        if not match:
            return inner
        inner = match.group(1).strip()


@dataclass(frozen=True)
class ColumnType:
    """A parsed ClickHouse column type."""

    raw: str

    @property
    def base(self) -> str:
        """The type without ``Nullable`` / ``LowCardinality`` wrappers."""
        return _base(self.raw)

    @property
    def nullable(self) -> bool:
        """Whether NULL can be stored."""
        return "Nullable(" in self.raw

    @property
    def family(self) -> str:
        """One of int, float, decimal, bool, string, datetime, date, enum, array, other."""
        base = self.base
        if re.match(r"^U?Int\d+$", base):
            return "int"
        if base.startswith("Float"):
            return "float"
        if base.startswith("Decimal"):
            return "decimal"
        if base == "Bool":
            return "bool"
        if base in ("String", "UUID", "IPv4", "IPv6") or base.startswith("FixedString"):
            return "string"
        if base.startswith("DateTime"):
            return "datetime"
        if base.startswith("Date"):
            return "date"
        if base.startswith("Enum"):
            return "enum"
        if base.startswith("Array"):
            return "array"
        return "other"

    @property
    def enum_labels(self) -> set[str]:
        """The labels of an ``Enum8/16`` type."""
        return set(re.findall(r"'((?:[^'\\]|\\.)*)'\s*=", self.base))

    @property
    def int_bounds(self) -> tuple[int, int] | None:
        """Lowest and highest value of an integer type."""
        match = re.match(r"^(U?)Int(\d+)$", self.base)
        if not match:
            return None
        bits = int(match.group(2))
        if match.group(1):
            return 0, 2**bits - 1
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def arrow_family(t: pa.DataType) -> str:
    """The :attr:`ColumnType.family` an Arrow type naturally fits."""
    if pa.types.is_dictionary(t):
        return arrow_family(t.value_type)
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "datetime"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "array"
    if pa.types.is_null(t):
        return "null"
    return "other"


# Which Arrow families each ClickHouse family accepts without losing information.
COMPATIBLE: dict[str, set[str]] = {
    "int": {"int", "float", "bool", "null"},  # floats are checked for fractions row by row
    "float": {"int", "float", "decimal", "null"},
    "decimal": {"int", "float", "decimal", "null"},
    "bool": {"bool", "null"},
    "string": {"string", "null"},
    "datetime": {"datetime", "date", "null"},
    "date": {"date", "datetime", "null"},
    "enum": {"string", "null"},
    "array": {"array", "null"},
    "other": {"int", "float", "decimal", "bool", "string", "datetime", "date", "array", "null"},
}
