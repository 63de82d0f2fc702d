"""The loader refuses data ClickHouse would store wrongly, and applies the drift policy."""

from __future__ import annotations

import pandas as pd
import pytest

from dataproc_dagster import create_clickhouse_loader
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.helpers.pipelines import failure_message, run_pipeline

TABLE = """
CREATE TABLE strict (
    id Int64,
    qty Int32,
    status Enum8('new' = 1, 'paid' = 2),
    note String,
    score Nullable(Float64)
) ENGINE = MergeTree ORDER BY id
"""


@pytest.fixture
def strict(clickhouse: ClickHouseResource) -> ClickHouseResource:
    clickhouse.command(TABLE)
    clickhouse.command("INSERT INTO strict VALUES (1, 1, 'new', 'kept', NULL)")
    return clickhouse


def _good(**changes: object) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": [10, 11, 12],
            "qty": [1, 2, 3],
            "status": ["new", "paid", "new"],
            "note": ["a", "b", "c"],
            "score": [0.5, None, 1.5],
        }
    )
    for name, values in changes.items():
        frame[name] = values
    return frame


def _load_fails(clickhouse: ClickHouseResource, frame: pd.DataFrame, **loader: object) -> str:
    result = run_pipeline(clickhouse, [frame], create_clickhouse_loader("strict", **loader))
    assert not result.success
    assert clickhouse.query_rows("SELECT id, note FROM strict") == [(1, "kept")]
    return failure_message(result)


def test_valid_frame_loads(strict: ClickHouseResource) -> None:
    assert run_pipeline(strict, [_good()], create_clickhouse_loader("strict")).success
    assert strict.query_rows("SELECT id, status, score FROM strict ORDER BY id") == [
        (1, "new", None),
        (10, "new", 0.5),
        (11, "paid", None),
        (12, "new", 1.5),
    ]


def test_null_into_non_nullable_column_is_refused(strict: ClickHouseResource) -> None:
    message = _load_fails(strict, _good(note=["a", None, "c"]))
    assert "column 'note'" in message and "row 1 is NULL" in message
    assert "default.strict" in message and "test_pipeline" in message


def test_float_with_fraction_into_integer_is_refused(strict: ClickHouseResource) -> None:
    message = _load_fails(strict, _good(qty=[1.0, 2.5, 3.0]))
    assert "column 'qty'" in message and "row 1 holds 2.5" in message and "round" in message


def test_whole_floats_into_integer_load(strict: ClickHouseResource) -> None:
    assert run_pipeline(
        strict, [_good(qty=[1.0, 2.0, 3.0])], create_clickhouse_loader("strict")
    ).success
    assert strict.query_rows("SELECT sum(qty) FROM strict") == [(7,)]


def test_integer_out_of_range_is_refused(strict: ClickHouseResource) -> None:
    message = _load_fails(strict, _good(qty=[1, 2**40, 3]))
    assert "column 'qty'" in message and str(2**40) in message


def test_unknown_enum_label_is_refused(strict: ClickHouseResource) -> None:
    message = _load_fails(strict, _good(status=["new", "refunded", "paid"]))
    assert "column 'status'" in message and "'refunded'" in message and "labels" in message


def test_mixed_type_object_column_is_refused(strict: ClickHouseResource) -> None:
    message = _load_fails(strict, _good(note=["a", 5, "c"]))
    assert "column 'note'" in message and "mixed" in message


def test_wrong_type_names_table_column_expected_and_found(strict: ClickHouseResource) -> None:
    message = _load_fails(strict, _good(note=[1, 2, 3]))
    assert "column 'note'" in message and "String" in message and "int64" in message


def test_drift_freeze_fails_and_shows_the_difference(strict: ClickHouseResource) -> None:
    message = _load_fails(strict, _good(extra=[1, 2, 3]), schema_drift="freeze")
    assert "extra (int64)" in message and "schema_drift" in message


def test_drift_evolve_adds_the_column(strict: ClickHouseResource) -> None:
    loader = create_clickhouse_loader("strict", schema_drift="evolve")
    assert run_pipeline(strict, [_good(extra=[7, 8, 9])], loader).success
    types = dict(
        strict.query_rows(
            "SELECT name, type FROM system.columns WHERE database = 'default' AND table = 'strict'"
        )
    )
    assert types["extra"] == "Nullable(Int64)"
    assert strict.query_rows("SELECT id, extra FROM strict ORDER BY id") == [
        (1, None),
        (10, 7),
        (11, 8),
        (12, 9),
    ]


def test_drift_discard_drops_the_column_with_a_warning(strict: ClickHouseResource) -> None:
    loader = create_clickhouse_loader("strict", schema_drift="discard")
    result = run_pipeline(strict, [_good(extra=[7, 8, 9])], loader)
    assert result.success
    load = [e for e in result.all_events if e.is_successful_output and e.step_key.endswith("load")]
    assert load[0].event_specific_data.metadata["columns_discarded"].value == "extra"  # type: ignore[union-attr]
    columns = [
        r[0]
        for r in strict.query_rows(
            "SELECT name FROM system.columns WHERE database = 'default' AND table = 'strict'"
        )
    ]
    assert "extra" not in columns
    assert strict.query_rows("SELECT count() FROM strict") == [(4,)]


def test_transformer_output_type_names_column_rule_and_values(
    clickhouse: ClickHouseResource,
) -> None:
    from dagster_pandas import PandasColumn, create_dagster_pandas_dataframe_type

    from dataproc_dagster import create_transformer

    Positive = create_dagster_pandas_dataframe_type(
        name="Positive", columns=[PandasColumn.integer_column("qty", min_value=0)]
    )
    transformer = create_transformer(lambda df: df, name="passthrough", output_type=Positive)
    frame = pd.DataFrame({"qty": [3, -4, 5, -6]})
    result = run_pipeline(
        clickhouse, [frame], create_clickhouse_loader("out"), transformers=[transformer]
    )
    assert not result.success
    message = failure_message(result)
    assert "qty" in message and "Positive" in message and "-4" in message
    assert clickhouse.query_rows(
        "SELECT count() FROM system.tables WHERE database = 'default' AND name = 'out'"
    ) == [(0,)]
