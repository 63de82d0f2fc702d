"""Partitioned pipelines as definitions: the schedule's ticks across DST changes, the derived
partition expressions, window templates, and the combinations refused when defined."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dagster import Definitions, ResourceDefinition, build_schedule_context

from dataproc_dagster import (
    ConfigError,
    Incremental,
    create_clickhouse_extractor,
    create_clickhouse_loader,
    create_etl_pipeline,
    create_extractor,
    create_file_extractor,
    create_http_extractor,
    create_metabase_extractor,
)
from dataproc_dagster.pipeline.partitions import (
    daily_partitions,
    hourly_partitions,
    monthly_partitions,
    partition_expression,
    static_partitions,
    weekly_partitions,
)
from dataproc_dagster.pipeline.window import PartitionWindow

BERLIN = ZoneInfo("Europe/Berlin")
URL = "http://127.0.0.1:9/items"


def rows() -> pd.DataFrame:
    return pd.DataFrame({"id": [1]})


def http(**options: Any) -> Any:
    return create_http_extractor(URL, **options)


WINDOW = {"since": "{start:%Y-%m-%d}", "until": "{end:%Y-%m-%d}"}


def daily(**options: Any) -> Any:
    values: dict[str, Any] = {
        "name": "daily",
        "extractor": http(window_params=WINDOW),
        "loader": create_clickhouse_loader("daily", mode="replace_partitions"),
        "partitions": daily_partitions("2024-01-01", timezone="Europe/Berlin"),
        "time_column": "ts",
        "timezone": "Europe/Berlin",
    }
    values.update(options)
    return create_etl_pipeline(**values)


@pytest.mark.parametrize(
    ("tick", "partition", "hours"),
    [
        # 06:00 after the spring change (31 March has 23 hours) and after the autumn one
        # (27 October has 25): the tick targets the day that just closed, in Berlin time.
        (datetime(2024, 3, 31, 6, 0, tzinfo=BERLIN), "2024-03-30", 24),
        (datetime(2024, 4, 1, 6, 0, tzinfo=BERLIN), "2024-03-31", 23),
        (datetime(2024, 10, 27, 6, 0, tzinfo=BERLIN), "2024-10-26", 24),
        (datetime(2024, 10, 28, 6, 0, tzinfo=BERLIN), "2024-10-27", 25),
    ],
)
def test_schedule_tick_targets_the_day_that_closed_across_dst(
    tick: datetime, partition: str, hours: int
) -> None:
    pipeline = daily(schedule="0 6 * * *")
    defs = Definitions(
        assets=[*pipeline.sources, *pipeline.assets],
        asset_checks=list(pipeline.asset_checks),
        jobs=[pipeline.job],
        schedules=[pipeline.schedule],
        resources={"clickhouse": ResourceDefinition.none_resource()},
    )
    schedule = defs.resolve_schedule_def("daily_schedule")
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.cron_schedule == "0 6 * * *"
    context = build_schedule_context(scheduled_execution_time=tick)
    (request,) = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == partition
    window = daily_partitions("2024-01-01", timezone="Europe/Berlin").time_window_for_partition_key(
        partition
    )
    # Real elapsed time (same-zone subtraction in Python is wall-clock time).
    assert window.end.astimezone(UTC) - window.start.astimezone(UTC) == timedelta(hours=hours)


def test_partition_expressions_follow_the_grain() -> None:
    assert partition_expression(daily_partitions("2024-01-01"), "ts") == "toYYYYMMDD(`ts`, 'UTC')"
    assert (
        partition_expression(hourly_partitions("2024-01-01-00:00", timezone="Europe/Berlin"), "ts")
        == "toStartOfHour(`ts`, 'Europe/Berlin')"
    )
    assert partition_expression(weekly_partitions("2024-01-07"), "ts") == (
        "toStartOfWeek(`ts`, 0, 'UTC')"
    )
    assert partition_expression(monthly_partitions("2024-01-01"), "ts") == ("toYYYYMM(`ts`, 'UTC')")
    with pytest.raises(ConfigError, match="static"):
        partition_expression(static_partitions(["a"]), "ts")


def test_window_templates() -> None:
    start, end = datetime(2024, 3, 31, tzinfo=BERLIN), datetime(2024, 4, 1, tzinfo=BERLIN)
    window = PartitionWindow(("2024-03-31",), start, end)
    assert window.render("{start:%Y-%m-%d}/{end:%d}", option="t") == "2024-03-31/01"
    assert window.render("{start}", option="t") == "2024-03-31T00:00:00+01:00"
    assert window.render("{end}", option="t") == "2024-04-01T00:00:00+02:00"
    assert window.render("{key}", option="t") == "2024-03-31"
    with pytest.raises(ConfigError, match="only"):
        window.render("{start.year}", option="t")
    with pytest.raises(ConfigError, match="only"):
        window.render("{password}", option="t")
    with pytest.raises(ConfigError, match="no time window"):
        PartitionWindow(("north",)).render("{start}", option="t")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"extractor": http(incremental=Incremental("updated_at", param="since"))},
            "exclusive",
        ),
        ({"extractor": http()}, "window_params is not set"),
        ({"extractor": create_clickhouse_extractor("SELECT 1")}, "window_parameters is not set"),
        (
            {"extractor": create_metabase_extractor(1, native_query="SELECT 1")},
            "window_parameters is not set",
        ),
        ({"extractor": create_file_extractor("a.csv")}, "its path has no"),
        ({"time_column": None}, "needs the rows' time column"),
        (
            {
                "loader": create_clickhouse_loader(
                    "daily", mode="replace_partitions", partition_by="toYYYYMM(ts)"
                )
            },
            "not the partitions' grain",
        ),
        ({"schedule": "0 6 * * *", "timezone": "UTC"}, "differs from the partitions'"),
        ({"partitions": static_partitions(["a"]), "schedule": "0 6 * * *"}, "time-window"),
        ({"loader": create_clickhouse_loader(None)}, "run config"),
        ({"partitions": "daily"}, "PartitionsDefinition"),
        ({"schedule": "0 6,18 * * *"}, "one tick per partition"),
    ],
)
def test_refused_combinations(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        daily(**options)


def test_window_options_without_partitions_and_bad_templates_are_refused() -> None:
    with pytest.raises(ConfigError, match="partitioned pipelines only"):
        create_etl_pipeline(
            name="plain",
            extractor=create_extractor(rows),
            loader=create_clickhouse_loader("plain"),
            time_column="ts",
        )
    with pytest.raises(ConfigError, match=r"\{day\}"):
        http(window_params={"since": "{day}"})
    with pytest.raises(ConfigError, match="native_query only"):
        create_metabase_extractor(1, table_id=2, window_parameters={"s": "{start}"})


def test_partitioned_assets_and_job() -> None:
    pipeline = daily(backfill_policy="single_run")
    (asset,) = pipeline.assets
    assert asset.partitions_def == daily_partitions("2024-01-01", timezone="Europe/Berlin")
    assert asset.backfill_policy is not None
    assert str(asset.backfill_policy.policy_type).endswith("SINGLE_RUN")
    # The derived PARTITION BY reached the loader.
    (node,) = [n for n in asset.node_def.node_defs if n.name == "daily__load"]
    assert node.name == "daily__load"
    resolved = pipeline.resolve_job({"clickhouse": ResourceDefinition.none_resource()})
    assert resolved.partitions_def == asset.partitions_def
