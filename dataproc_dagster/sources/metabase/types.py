"""Metabase ``base_type`` -> pandas dtype -> ClickHouse column, and value conversion.

Metabase describes every result column with a ``base_type`` (and, when coerced, an
``effective_type``) from a type hierarchy. Values arrive as JSON: integers sometimes as strings
(``js-int-to-string?``), temporal values as ISO-8601 text with or without an offset, booleans as
``true``/``false`` or ``0``/``1``. Conversion goes by the column's type, never by the value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

# Family of each type Metabase can report, most specific first; a type not listed falls back to
# its family by name pattern, and then to text.
_FAMILY: dict[str, str] = {
    "type/BigInteger": "integer",
    "type/Integer": "integer",
    "type/Float": "float",
    "type/Decimal": "decimal",
    "type/Number": "float",
    "type/Text": "text",
    "type/UUID": "text",
    "type/IPAddress": "text",
    "type/TextLike": "text",
    "type/PostgresEnum": "text",
    "type/MySQLEnum": "text",
    "type/Boolean": "boolean",
    "type/Date": "date",
    "type/DateTime": "datetime",
    "type/DateTimeWithTZ": "datetime_tz",
    "type/DateTimeWithLocalTZ": "datetime_tz",
    "type/DateTimeWithZoneOffset": "datetime_tz",
    "type/DateTimeWithZoneID": "datetime_tz",
    "type/Instant": "datetime_tz",
    "type/Time": "time",
    "type/TimeWithTZ": "time",
    "type/TimeWithLocalTZ": "time",
    "type/TimeWithZoneOffset": "time",
    "type/JSON": "json",
    "type/SerializedJSON": "json",
    "type/Array": "json",
    "type/Dictionary": "json",
    "type/Structured": "json",
}

_CLICKHOUSE: dict[str, str] = {
    "integer": "Nullable(Int64)",
    "float": "Nullable(Float64)",
    "decimal": "Nullable(Float64)",
    "text": "Nullable(String)",
    "boolean": "Nullable(Bool)",
    "date": "Nullable(Date32)",
    "datetime": "Nullable(DateTime64(3, 'UTC'))",
    "datetime_tz": "Nullable(DateTime64(3, 'UTC'))",
    "time": "Nullable(String)",
    "json": "Nullable(String)",
}

_PANDAS: dict[str, str] = {
    "integer": "Int64",
    "float": "float64",
    "decimal": "float64",
    "text": "string",
    "boolean": "boolean",
    "date": "datetime64[ns, UTC]",
    "datetime": "datetime64[ns, UTC]",
    "datetime_tz": "datetime64[ns, UTC]",
    "time": "string",
    "json": "string",
}

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT64 = {pa.int64(): pd.Int64Dtype()}
_BOOL = {pa.bool_(): pd.BooleanDtype()}


def type_family(base_type: str | None, effective_type: str | None = None) -> str:
    """The conversion family of a column: exact type first, then by name, else ``text``.

    ``effective_type`` wins over ``base_type`` because it is what Metabase coerced the column
    to (e.g. a UNIX timestamp integer read as a datetime).
    """
    for name in (effective_type, base_type):
        if not name:
            continue
        if name in _FAMILY:
            return _FAMILY[name]
        family = _family_by_pattern(name)
        if family:
            return family
    return "text"


def _family_by_pattern(name: str) -> str | None:
    lowered = name.lower()
    if "datetime" in lowered or "timestamp" in lowered or "instant" in lowered:
        return "datetime_tz" if "tz" in lowered or "zone" in lowered else "datetime"
    if lowered.startswith("type/time"):
        return "time"
    if lowered.endswith("date"):
        return "date"
    if "integer" in lowered:
        return "integer"
    if "decimal" in lowered:
        return "decimal"
    if "float" in lowered or "number" in lowered:
        return "float"
    if "boolean" in lowered:
        return "boolean"
    if "json" in lowered or "array" in lowered or "dictionary" in lowered:
        return "json"
    return None


def pandas_dtype(base_type: str | None, effective_type: str | None = None) -> str:
    """The pandas dtype a column of this Metabase type becomes (reference section 9)."""
    return _PANDAS[type_family(base_type, effective_type)]


def clickhouse_type(base_type: str | None, effective_type: str | None = None) -> str:
    """The ClickHouse column type for a Metabase type (reference section 9)."""
    return _CLICKHOUSE[type_family(base_type, effective_type)]


def convert_column(
    values: Sequence[Any],
    base_type: str | None,
    effective_type: str | None = None,
    *,
    timezone: str = "UTC",
    name: str = "",
) -> pd.Series:
    """Turn one column of JSON values into a typed pandas Series.

    Args:
        values: The column's values as decoded from JSON.
        base_type: The column's ``base_type``.
        effective_type: The column's ``effective_type``, if any.
        timezone: The report time zone (``results_timezone``): naive temporal text is read in it.
        name: The column name, for error messages.

    Raises:
        ValueError: When a value does not fit the column's type; the message names the column.
    """
    family = type_family(base_type, effective_type)
    try:
        return _CONVERTERS[family](values, timezone)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(
            f"column {name!r} ({effective_type or base_type}) holds a value that is not "
            f"{family}: {exc}"
        ) from exc


def _to_int(values: Sequence[Any], timezone: str) -> pd.Series:
    try:
        # Plain JSON integers (and nulls): converted in C.
        return pd.Series(pa.array(values, type=pa.int64()).to_pandas(types_mapper=_INT64.get))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        return _to_int_slow(values)


def _to_int_slow(values: Sequence[Any]) -> pd.Series:
    # Metabase stringifies integers beyond 2^53 (and, in older releases, every PK/FK), so a
    # str is parsed back; int() keeps full precision where float would not.
    out: list[int | None] = []
    for value in values:
        if value is None:
            out.append(None)
        elif isinstance(value, bool):
            out.append(int(value))
        elif isinstance(value, int):
            out.append(value)
        elif isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{value!r} is not a whole number")
            out.append(int(value))
        else:
            out.append(int(str(value).strip()))
    for value in out:
        if value is not None and not _INT64_MIN <= value <= _INT64_MAX:
            raise OverflowError(f"{value} does not fit in a 64-bit integer")
    return pd.Series(pd.array(out, dtype="Int64"))


def _to_float(values: Sequence[Any], timezone: str) -> pd.Series:
    try:
        return pd.Series(np.array(values, dtype="float64"))
    except (ValueError, TypeError):
        pass
    return pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")


def _to_bool(values: Sequence[Any], timezone: str) -> pd.Series:
    try:
        return pd.Series(pa.array(values, type=pa.bool_()).to_pandas(types_mapper=_BOOL.get))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass  # SQLite-backed databases send 0/1; strings are possible too
    out: list[bool | None] = []
    for value in values:
        if value is None:
            out.append(None)
        elif isinstance(value, bool):
            out.append(value)
        elif isinstance(value, int | float):
            out.append(bool(value))
        else:
            text = str(value).strip().lower()
            if text in ("true", "1", "t", "yes"):
                out.append(True)
            elif text in ("false", "0", "f", "no"):
                out.append(False)
            else:
                raise ValueError(f"{value!r} is not a boolean")
    return pd.Series(pd.array(out, dtype="boolean"))


def _to_text(values: Sequence[Any], timezone: str) -> pd.Series:
    if all(v is None or type(v) is str for v in values):
        return pd.Series(pd.array(list(values), dtype="string"))
    return pd.Series(pd.array([None if v is None else _as_text(v) for v in values], dtype="string"))


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _to_json_text(values: Sequence[Any], timezone: str) -> pd.Series:
    # Structured values become JSON text so that every chunk has one Arrow type.
    return pd.Series(
        pd.array(
            [
                None
                if v is None
                else (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
                for v in values
            ],
            dtype="string",
        )
    )


def _to_datetime(values: Sequence[Any], timezone: str) -> pd.Series:
    """ISO text with an offset keeps it; naive text (exports) is in the report time zone."""
    texts = [None if v is None else v if type(v) is str else str(v) for v in values]
    if all(t is None or _has_offset(t) for t in texts):
        parsed = pd.to_datetime(pd.Series(texts, dtype="object"), utc=True, format="ISO8601")
    else:
        # Mixed or naive: read each naive value in the report time zone, then go to UTC.
        naive = pd.to_datetime(
            pd.Series([None if t is None or _has_offset(t) else t for t in texts], dtype="object"),
            format="ISO8601",
        )
        localized = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        parsed = localized.dt.tz_convert("UTC")
        if any(t is not None and _has_offset(t) for t in texts):
            with_offset = pd.to_datetime(
                pd.Series([t if t is not None and _has_offset(t) else None for t in texts]),
                utc=True,
                format="ISO8601",
            )
            parsed = parsed.where(with_offset.isna(), with_offset)
    return parsed.astype("datetime64[ns, UTC]")


def _to_date(values: Sequence[Any], timezone: str) -> pd.Series:
    """A DATE arrives as midnight in the report zone (``2024-01-02T00:00:00Z``) or bare.

    The calendar date as written is kept (midnight UTC of that date), so that a report zone
    east or west of UTC never moves a date to the day before or after.
    """
    texts = [None if v is None else str(v)[:10] for v in values]
    parsed = pd.to_datetime(pd.Series(texts, dtype="object"), format="%Y-%m-%d", utc=True)
    return parsed.astype("datetime64[ns, UTC]")


def _has_offset(text: str) -> bool:
    if text[-1:] in ("Z", "z"):
        return True
    return len(text) > 10 and text[-6] in "+-" and text[-3] == ":"


_CONVERTERS = {
    "integer": _to_int,
    "float": _to_float,
    "decimal": _to_float,
    "text": _to_text,
    "boolean": _to_bool,
    "date": _to_date,
    "datetime": _to_datetime,
    "datetime_tz": _to_datetime,
    "time": _to_text,
    "json": _to_json_text,
}


def rows_to_frame(
    rows: Sequence[Sequence[Any]],
    cols: Sequence[dict[str, Any]],
    *,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """Build a typed DataFrame from positional ``rows`` described by Metabase ``cols``.

    Raises:
        ValueError: When a row does not have one value per column, or a value does not fit.
    """
    width = len(cols)
    for index, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"row {index} has {len(row)} values, expected {width} (one per column)"
            )
    # itemgetter per column is several times faster than zip(*rows) for long results.
    columns = [list(map(itemgetter(i), rows)) for i in range(width)]
    data: dict[str, pd.Series] = {}
    for col, values in zip(cols, columns, strict=True):
        name = str(col.get("name"))
        # Native SQL may return two columns of one name; keep both, as name, name_2, ...
        base, number = name, 1
        while name in data:
            number += 1
            name = f"{base}_{number}"
        data[name] = convert_column(
            values,
            col.get("base_type"),
            col.get("effective_type"),
            timezone=timezone,
            name=name,
        )
    return pd.DataFrame(data)
