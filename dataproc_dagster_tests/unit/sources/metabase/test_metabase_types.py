"""Metabase base_type -> pandas -> ClickHouse, and value conversion by column type."""

from __future__ import annotations

import pandas as pd
import pytest

from dataproc_dagster.sources.metabase.types import (
    clickhouse_type,
    convert_column,
    pandas_dtype,
    rows_to_frame,
    type_family,
)


@pytest.mark.parametrize(
    ("base_type", "dtype", "column"),
    [
        ("type/Integer", "Int64", "Nullable(Int64)"),
        ("type/BigInteger", "Int64", "Nullable(Int64)"),
        ("type/Float", "float64", "Nullable(Float64)"),
        ("type/Decimal", "float64", "Nullable(Float64)"),
        ("type/Text", "string", "Nullable(String)"),
        ("type/UUID", "string", "Nullable(String)"),
        ("type/IPAddress", "string", "Nullable(String)"),
        ("type/Boolean", "boolean", "Nullable(Bool)"),
        ("type/Date", "datetime64[ns, UTC]", "Nullable(Date32)"),
        ("type/DateTime", "datetime64[ns, UTC]", "Nullable(DateTime64(3, 'UTC'))"),
        ("type/DateTimeWithLocalTZ", "datetime64[ns, UTC]", "Nullable(DateTime64(3, 'UTC'))"),
        ("type/Time", "string", "Nullable(String)"),
        ("type/JSON", "string", "Nullable(String)"),
        ("type/*", "string", "Nullable(String)"),
    ],
)
def test_section_9_mapping(base_type: str, dtype: str, column: str) -> None:
    assert pandas_dtype(base_type) == dtype
    assert clickhouse_type(base_type) == column


def test_effective_type_wins_and_unknown_types_fall_back_by_family() -> None:
    # A UNIX-seconds integer coerced to a datetime by Metabase is read as a datetime.
    assert type_family("type/Integer", "type/Instant") == "datetime_tz"
    assert type_family("type/UnknownBigInteger") == "integer"
    assert type_family("type/DateTimeWithSomethingNew") == "datetime"
    assert type_family("type/Postgres.Money") == "text"
    assert type_family(None) == "text"


def test_integers_sent_as_strings_come_back_exact_beyond_2_pow_53() -> None:
    series = convert_column(["9007199254740993", 42, None, "-9007199254740995"], "type/BigInteger")
    assert str(series.dtype) == "Int64"
    assert series.tolist()[0] == 9007199254740993
    assert series.tolist()[3] == -9007199254740995
    assert series.isna().tolist() == [False, False, True, False]


def test_integer_out_of_int64_range_names_the_column() -> None:
    with pytest.raises(ValueError, match=r"column 'big'.*64-bit"):
        convert_column([str(2**64)], "type/BigInteger", name="big")


def test_datetimes_keep_their_offset_and_become_utc() -> None:
    series = convert_column(
        ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.25+01:00", None], "type/DateTime"
    )
    assert str(series.dtype) == "datetime64[ns, UTC]"
    assert series[0] == pd.Timestamp("2024-01-02T03:04:05Z")
    assert series[1] == pd.Timestamp("2024-01-02T02:04:05.25Z")
    assert pd.isna(series[2])


def test_naive_export_datetimes_are_read_in_the_report_zone_and_midnight_dates_accepted() -> None:
    # Exports write datetimes without offset and collapse midnight to a bare date.
    series = convert_column(
        ["2024-07-01T12:00:00", "2024-07-02"], "type/DateTime", timezone="Europe/Berlin"
    )
    assert series[0] == pd.Timestamp("2024-07-01T10:00:00Z")
    assert series[1] == pd.Timestamp("2024-07-01T22:00:00Z")


def test_dates_keep_the_calendar_day_whatever_the_report_zone() -> None:
    series = convert_column(
        ["2024-01-02T00:00:00+01:00", "2024-01-03T00:00:00Z", "2024-01-04", None], "type/Date"
    )
    assert [None if pd.isna(v) else v.date().isoformat() for v in series] == [
        "2024-01-02",
        "2024-01-03",
        "2024-01-04",
        None,
    ]
    assert str(series.dtype) == "datetime64[ns, UTC]"


def test_booleans_from_json_and_from_sqlite_integers() -> None:
    series = convert_column([True, False, 1, 0, None, "true"], "type/Boolean")
    assert str(series.dtype) == "boolean"
    assert series.tolist()[:4] == [True, False, True, False]
    assert pd.isna(series[4]) and series[5]


def test_bad_boolean_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"'flag'.*not a boolean"):
        convert_column(["maybe"], "type/Boolean", name="flag")


def test_json_and_text_values_become_one_string_type() -> None:
    series = convert_column([{"a": 1}, [1, 2], "raw", None], "type/JSON")
    assert series.tolist()[:3] == ['{"a": 1}', "[1, 2]", "raw"]
    text = convert_column([1, True, "Zoë", None], "type/Text")
    assert text.tolist()[:3] == ["1", "true", "Zoë"]
    assert pd.isna(text[3])


def test_rows_to_frame_types_each_column_and_keeps_duplicate_names() -> None:
    cols = [
        {"name": "id", "base_type": "type/Integer"},
        {"name": "id", "base_type": "type/Text"},
        {"name": "at", "base_type": "type/DateTime"},
    ]
    frame = rows_to_frame([[1, "a", "2024-01-01T00:00:00Z"], ["2", None, None]], cols)
    assert list(frame.columns) == ["id", "id_2", "at"]
    assert frame["id"].tolist() == [1, 2]
    assert str(frame["at"].dtype) == "datetime64[ns, UTC]"


def test_rows_to_frame_rejects_a_short_row() -> None:
    with pytest.raises(ValueError, match="row 1 has 1 values, expected 2"):
        rows_to_frame([[1, 2], [3]], [{"name": "a", "base_type": "type/Integer"}, {"name": "b"}])


def test_empty_result_keeps_its_columns() -> None:
    frame = rows_to_frame([], [{"name": "a", "base_type": "type/Integer"}])
    assert list(frame.columns) == ["a"] and len(frame) == 0
