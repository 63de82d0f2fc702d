"""Upsert (ReplacingMergeTree) tables read right: SQL steps, show_table and the integrity check."""

from __future__ import annotations

import pandas as pd
import pytest

from dataproc_dagster import create_clickhouse_loader, create_sql_step
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.integrity import checks as integrity
from dataproc_dagster.integrity import tables
from dataproc_dagster_tests.helpers.pipelines import run_pipeline


def _orders(amount: float) -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3, 4], "amount": [amount] * 4})


class _Pipeline:
    """What the integrity check needs of a pipeline."""

    name = "orders"
    targets = ("orders", "order_totals")


def _load_twice(clickhouse: ClickHouseResource) -> None:
    """Two upsert loads of the same 4 keys, then a SQL step summing the table."""
    loader = create_clickhouse_loader("orders", mode="upsert", key_columns=["id"])
    totals = create_sql_step(
        "SELECT count() AS orders, sum(amount) AS total FROM orders", "order_totals"
    )
    for amount in (1.0, 10.0):
        result = run_pipeline(
            clickhouse, [_orders(amount)], loader, name="orders", sql_steps=[totals]
        )
        assert result.success


def test_sql_step_reads_an_upsert_table_once_per_key(clickhouse: ClickHouseResource) -> None:
    _load_twice(clickhouse)
    # The table really holds the key twice until ClickHouse merges it (else this proves nothing).
    assert clickhouse.query_rows("SELECT count() FROM orders") == [(8,)]
    assert clickhouse.query_rows("SELECT orders, total FROM order_totals") == [(4, 40.0)]


def test_show_table_counts_each_key_once(
    clickhouse: ClickHouseResource,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dataproc_dagster.cli.show_table import main

    _load_twice(clickhouse)
    monkeypatch.setenv("CLICKHOUSE_URL", clickhouse.url)
    get_settings.cache_clear()
    try:
        assert main(["orders", "--rows", "10"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "default.orders: 4 rows" in out
    assert out.count("10.0") == 4 and " 1.0" not in out


def test_integrity_check_does_not_warn_on_unmerged_upsert_keys(
    clickhouse: ClickHouseResource,
) -> None:
    _load_twice(clickhouse)
    assert clickhouse.query_rows("SELECT count() FROM orders") == [(8,)]  # not merged yet
    [result] = tables.check_pipeline_tables(clickhouse, [_Pipeline()])
    assert result.status == integrity.PASSED, result.summary
    assert result.metadata["keys_not_merged_yet"] == {"default.orders": 4}

    clickhouse.command("OPTIMIZE TABLE orders FINAL")
    [merged] = tables.check_pipeline_tables(clickhouse, [_Pipeline()])
    assert merged.status == integrity.PASSED, merged.summary
    assert "keys_not_merged_yet" not in merged.metadata


def test_row_count_of_an_upsert_table_counts_each_key_once(
    clickhouse: ClickHouseResource,
) -> None:
    """What the catalog shows: the FINAL count, the stored versions apart."""
    loader = create_clickhouse_loader("orders", mode="upsert", key_columns=["id"])
    counts = []
    for amount in (1.0, 10.0, 100.0):
        result = run_pipeline(clickhouse, [_orders(amount)], loader, name="orders")
        assert result.success
        [event] = [
            e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "orders"
        ]
        metadata = event.step_materialization_data.materialization.metadata
        counts.append((metadata["dagster/row_count"].value, metadata["dataproc/stored_rows"].value))
    assert [rows for rows, _stored in counts] == [4, 4, 4]
    stored = clickhouse.query_rows("SELECT count() FROM orders")[0][0]
    assert counts[-1][1] == stored and stored > 4  # the versions are really there, unmerged
