"""The incremental boundary filter and how the bound is sent."""

from __future__ import annotations

from datetime import UTC, datetime

from dataproc_dagster.sources.http.incremental import Incremental, LowerBound

RECORDS = [
    {"id": 1, "updated_at": "2024-01-01T10:00:00Z"},
    {"id": 2, "updated_at": "2024-01-01T12:00:00Z"},
    {"id": 3, "updated_at": "2024-01-01T12:00:00Z"},
    {"id": 4, "updated_at": "2024-01-01T13:00:00Z"},
]


def test_rows_at_the_bound_already_loaded_are_dropped_by_key() -> None:
    incremental = Incremental(cursor_field="updated_at", param="since", key=("id",))
    bound = LowerBound("2024-01-01T12:00:00Z", keys=frozenset({("2",)}))
    kept = bound.keep(RECORDS, incremental)
    assert [r["id"] for r in kept] == [3, 4]


def test_without_a_key_every_row_at_the_bound_is_dropped() -> None:
    incremental = Incremental(cursor_field="updated_at", param="since")
    kept = LowerBound("2024-01-01T12:00:00Z").keep(RECORDS, incremental)
    assert [r["id"] for r in kept] == [4]


def test_a_datetime_bound_from_clickhouse_compares_with_iso_strings() -> None:
    incremental = Incremental(cursor_field="updated_at", param="since", key=("id",))
    bound = LowerBound(datetime(2024, 1, 1, 12, 0), keys=frozenset({("2",), ("3",)}))
    assert bound.param_value == "2024-01-01T12:00:00Z"
    assert [r["id"] for r in bound.keep(RECORDS, incremental)] == [4]


def test_numeric_cursor_and_nested_cursor_path() -> None:
    incremental = Incremental(cursor_field="meta.seq", param="after", key=("id",))
    assert incremental.column == "meta_seq"
    records = [{"id": i, "meta": {"seq": i * 10}} for i in range(1, 5)]
    bound = LowerBound(20, keys=frozenset({("2",)}))
    assert bound.param_value == "20"
    assert [r["id"] for r in bound.keep(records, incremental)] == [3, 4]


def test_an_aware_datetime_bound_is_sent_in_utc() -> None:
    bound = LowerBound(datetime(2024, 5, 1, 8, 30, tzinfo=UTC))
    assert bound.param_value == "2024-05-01T08:30:00Z"
