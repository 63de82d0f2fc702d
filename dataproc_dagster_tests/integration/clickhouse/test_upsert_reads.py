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


def test_integrity_check_reports_keys_present_more_than_once(
    clickhouse: ClickHouseResource,
) -> None:
    _load_twice(clickhouse)
    [result] = tables.check_pipeline_tables(clickhouse, [_Pipeline()])
    assert result.status == integrity.WARNING
    assert "default.orders (4 keys)" in result.summary
    assert result.metadata["keys_present_more_than_once"] == {"default.orders": 4}
    assert "FINAL" in result.fix

    clickhouse.command("OPTIMIZE TABLE orders FINAL")
    [merged] = tables.check_pipeline_tables(clickhouse, [_Pipeline()])
    assert merged.status == integrity.PASSED, merged.summary
