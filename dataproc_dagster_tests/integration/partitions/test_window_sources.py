"""Each extractor reads exactly its partition's window: ClickHouse (bound parameters), Metabase
native SQL (Metabase variables sent as parameters), a file path pattern and a custom function."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from dataproc_dagster import (
    create_clickhouse_extractor,
    create_clickhouse_loader,
    create_etl_pipeline,
    create_extractor,
    create_file_extractor,
    create_metabase_extractor,
)
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.pipeline.contracts import StepContext
from dataproc_dagster.pipeline.partitions import (
    daily_partitions,
    monthly_partitions,
    static_partitions,
)
from dataproc_dagster.sources.metabase.resource import MetabaseResource
from dataproc_dagster_tests.servers.metabase_fixtures import (  # noqa: F401 (fixture)
    StandinSetup,
    metabase,
)


def step_metadata(result: Any, step_suffix: str) -> dict[str, Any]:
    """The output metadata of the step whose key ends with ``step_suffix``."""
    for event in result.all_events:
        if event.is_successful_output and event.step_key.endswith(step_suffix):
            return {k: getattr(v, "value", v) for k, v in event.step_output_data.metadata.items()}
    raise AssertionError(f"no output of {step_suffix}")


def test_clickhouse_to_clickhouse_binds_the_window(clickhouse: ClickHouseResource) -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    with clickhouse.get_client() as client:
        client.command(
            "CREATE TABLE raw_events (id Int64, ts DateTime64(6, 'UTC'), v Float64) "
            "ENGINE = MergeTree ORDER BY id"
        )
        # One event every 6 hours over 5 days: each day starts with an event at 00:00:00.
        rows = [(i, start + timedelta(hours=6 * i), float(i)) for i in range(20)]
        client.insert("raw_events", rows, column_names=["id", "ts", "v"])
    pipeline = create_etl_pipeline(
        name="events_daily",
        extractor=create_clickhouse_extractor(
            "SELECT id, ts, v FROM raw_events "
            "WHERE ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}",
            window_parameters={
                "start": "{start:%Y-%m-%d %H:%M:%S}",
                "end": "{end:%Y-%m-%d %H:%M:%S}",
            },
        ),
        loader=create_clickhouse_loader("events_daily", mode="replace_partitions", order_by=["id"]),
        partitions=daily_partitions("2024-03-01"),
        time_column="ts",
    )
    resources = {"clickhouse": clickhouse}
    for day in ("2024-03-02", "2024-03-03", "2024-03-02"):
        result = pipeline.execute_in_process(resources=resources, partition_key=day)
        assert result.success
    # The bounds bound to the query, and the rows: [00:00 of the day, 00:00 of the next).
    assert step_metadata(result, "__extract")["window_parameters"] == (
        "start=2024-03-02 00:00:00, end=2024-03-03 00:00:00"
    )
    assert clickhouse.query_rows(
        "SELECT toString(toDate(ts)), min(id), max(id), count() FROM events_daily "
        "GROUP BY 1 ORDER BY 1"
    ) == [("2024-03-02", 4, 7, 4), ("2024-03-03", 8, 11, 4)]


def test_metabase_native_sql_sends_the_window_as_parameters(
    clickhouse: ClickHouseResource,
    metabase: StandinSetup,  # noqa: F811 (fixture)
) -> None:
    sql = (
        'SELECT id, amount, order_day FROM "PUBLIC"."ORDERS" '
        "WHERE order_day >= {{start}} AND order_day < {{end}}"
    )
    pipeline = create_etl_pipeline(
        name="orders_daily",
        extractor=create_metabase_extractor(
            database_name="Sales",
            native_query=sql,
            order_by="id",
            window_parameters={"start": "{start:%Y-%m-%d}", "end": "{end:%Y-%m-%d}"},
        ),
        loader=create_clickhouse_loader("orders_daily", mode="replace_partitions", order_by=["id"]),
        partitions=daily_partitions("2024-01-01"),
        time_column="order_day",
    )
    resources = {
        "clickhouse": clickhouse,
        "metabase": MetabaseResource(
            base_url=metabase.url, api_key=metabase.server.api_key, retry_backoff=0.01
        ),
    }
    result = pipeline.execute_in_process(resources=resources, partition_key="2024-01-05")
    assert result.success
    metabase.assert_native_window("2024-01-05", "2024-01-06")
    assert clickhouse.query_rows(
        "SELECT toString(toDate(order_day)), count(), min(id), max(id) FROM orders_daily GROUP BY 1"
    ) == [("2024-01-05", 13, 4, 4804)]


def test_file_path_pattern_reads_the_partition_file(
    clickhouse: ClickHouseResource, tmp_path: Path
) -> None:
    for month in ("2024-01", "2024-02"):
        frame = pd.DataFrame(
            {"id": [1, 2], "day": pd.to_datetime([f"{month}-03", f"{month}-20"]).date}
        )
        frame.to_csv(tmp_path / f"sales_{month}.csv", index=False)

    def typed(df: pd.DataFrame) -> pd.DataFrame:
        df["day"] = pd.to_datetime(df["day"]).dt.date
        return df

    pipeline = create_etl_pipeline(
        name="sales_monthly",
        extractor=create_file_extractor(str(tmp_path / "sales_{start:%Y-%m}.csv")),
        transformer=typed,
        loader=create_clickhouse_loader("sales_monthly", mode="replace_partitions"),
        partitions=monthly_partitions("2024-01-01"),
        time_column="day",
    )
    resources = {"clickhouse": clickhouse}
    for month in ("2024-01-01", "2024-02-01"):
        result = pipeline.execute_in_process(resources=resources, partition_key=month)
        assert result.success
    assert step_metadata(result, "__extract")["path"].endswith("sales_2024-02.csv")
    assert clickhouse.query_rows(
        "SELECT partition_key FROM system.tables WHERE name = 'sales_monthly'"
    ) == [("toYYYYMM(day, 'UTC')",)]
    assert clickhouse.query_rows(
        "SELECT toYYYYMM(day), count() FROM sales_monthly GROUP BY 1 ORDER BY 1"
    ) == [(202401, 2), (202402, 2)]


def test_custom_extractor_receives_the_window(clickhouse: ClickHouseResource) -> None:
    seen: list[Any] = []

    def regions(ctx: StepContext) -> Iterator[pd.DataFrame]:
        seen.append(ctx.window)
        yield pd.DataFrame({"region": [ctx.window.key], "sales": [len(ctx.window.key)]})

    pipeline = create_etl_pipeline(
        name="region_sales",
        extractor=create_extractor(regions),
        loader=create_clickhouse_loader(
            "region_sales", mode="replace_partitions", partition_by="region"
        ),
        partitions=static_partitions(["north", "south"]),
    )
    resources = {"clickhouse": clickhouse}
    for region in ("north", "south", "north"):
        assert pipeline.execute_in_process(resources=resources, partition_key=region).success
    assert [w.keys for w in seen] == [("north",), ("south",), ("north",)]
    assert seen[0].start is None and seen[0].end is None
    assert clickhouse.query_rows("SELECT region, sales FROM region_sales ORDER BY region") == [
        ("north", 5),
        ("south", 5),
    ]
