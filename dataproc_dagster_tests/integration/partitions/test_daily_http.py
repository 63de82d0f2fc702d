"""A daily pipeline over the tests' HTTP API (date-filtered): one partition, a 10-day backfill as
10 runs and as one run, a re-run of one day, rows outside the window, per-partition checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dagster import AssetKey, DagsterInstance, Definitions, build_schedule_context

from dataproc_dagster import (
    create_clickhouse_loader,
    create_etl_pipeline,
    create_http_extractor,
    create_sql_step,
    daily_partitions,
)
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.integration.partitions.daily_api import (
    PER_DAY,
    TABLE,
    daily_pipeline,
    day_records,
    parse_times,
)
from dataproc_dagster_tests.servers.http_api import ApiState, RunningApi, serve_api

KEY = AssetKey(["clickhouse", "default", TABLE])
DAYS = [f"2024-03-{day:02d}" for day in range(1, 11)]
RANGE_TAGS = {
    "dagster/asset_partition_range_start": DAYS[0],
    "dagster/asset_partition_range_end": DAYS[-1],
}


@pytest.fixture
def api() -> Any:
    with serve_api(ApiState(records=day_records())) as running:
        yield running


def per_day(clickhouse: ClickHouseResource) -> dict[str, tuple[int, int, float]]:
    """Day -> (rows, distinct ids, sum of prices) in the table."""
    rows = clickhouse.query_rows(
        f"SELECT toString(toDate(updated_at)), count(), uniqExact(id), sum(price) FROM {TABLE} "
        "GROUP BY 1 ORDER BY 1"
    )
    return {day: (int(n), int(ids), float(total)) for day, n, ids, total in rows}


def test_one_partition_reads_and_replaces_only_its_day(
    clickhouse: ClickHouseResource, api: RunningApi
) -> None:
    pipeline = daily_pipeline(api.url)
    result = pipeline.execute_in_process(
        resources={"clickhouse": clickhouse}, partition_key="2024-03-03"
    )
    assert result.success
    assert api.state.requests_to("/single") == [
        {"updated_from": "2024-03-03T00:00:00+00:00", "updated_before": "2024-03-04T00:00:00+00:00"}
    ]
    assert per_day(clickhouse) == {"2024-03-03": (PER_DAY, PER_DAY, PER_DAY * 1.0)}
    # The table's ClickHouse partitions are the days (derived from the time column).
    assert clickhouse.query_rows(
        "SELECT partition_key FROM system.tables WHERE name = {t:String}", {"t": TABLE}
    ) == [("toYYYYMMDD(updated_at, 'UTC')",)]
    (event,) = result.asset_materializations_for_node(f"{pipeline.name}__etl")
    assert event.partition == "2024-03-03"
    meta = {k: getattr(v, "value", v) for k, v in event.metadata.items()}
    assert meta["partition_rows"] == PER_DAY and meta["dagster/row_count"] == PER_DAY
    assert meta["partition_start"] == "2024-03-03T00:00:00+00:00"
    assert meta["partition_end"] == "2024-03-04T00:00:00+00:00"
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["rows_loaded"].passed
    assert checks["rows_loaded"].metadata["rows_in_window"].value == PER_DAY
    assert checks["columns_match"].passed
    assert {e.partition for e in result.get_asset_check_evaluations()} == {"2024-03-03"}


def test_backfill_as_ten_runs_then_rerun_of_one_day(
    clickhouse: ClickHouseResource, api: RunningApi
) -> None:
    pipeline = daily_pipeline(api.url)
    instance = DagsterInstance.ephemeral()
    for day in DAYS:
        result = pipeline.execute_in_process(
            resources={"clickhouse": clickhouse}, partition_key=day, instance=instance
        )
        assert result.success, day
    assert len(api.state.requests_to("/single")) == 10
    assert per_day(clickhouse) == {day: (PER_DAY, PER_DAY, PER_DAY * 1.0) for day in DAYS}
    # Every day is a materialized partition of the asset.
    assert instance.get_materialized_partitions(KEY) == set(DAYS)

    # The source corrects day 5; re-running that partition replaces exactly that day.
    api.state.records = [
        {**r, "price": 2.0} if r["day"] == "2024-03-05" else r for r in day_records()
    ]
    assert pipeline.execute_in_process(
        resources={"clickhouse": clickhouse}, partition_key="2024-03-05", instance=instance
    ).success
    expected = {day: (PER_DAY, PER_DAY, PER_DAY * 1.0) for day in DAYS}
    expected["2024-03-05"] = (PER_DAY, PER_DAY, PER_DAY * 2.0)
    assert per_day(clickhouse) == expected
    # A second materialization of the same day holds its rows once.
    assert pipeline.execute_in_process(
        resources={"clickhouse": clickhouse}, partition_key="2024-03-05", instance=instance
    ).success
    assert per_day(clickhouse) == expected


def test_backfill_as_one_run_reads_the_range_window(
    clickhouse: ClickHouseResource, api: RunningApi
) -> None:
    pipeline = daily_pipeline(api.url, backfill_policy="single_run")
    resources = {"clickhouse": clickhouse}
    # Days outside the range, loaded first, stay untouched.
    for day in ("2024-03-11", "2024-03-12"):
        assert pipeline.execute_in_process(resources=resources, partition_key=day).success
    api.state.log.clear()
    api.state.records = [{**r, "price": 3.0} for r in day_records()]
    result = pipeline.execute_in_process(resources=resources, tags=RANGE_TAGS)
    assert result.success
    assert api.state.requests_to("/single") == [
        {"updated_from": "2024-03-01T00:00:00+00:00", "updated_before": "2024-03-11T00:00:00+00:00"}
    ]
    expected = {day: (PER_DAY, PER_DAY, PER_DAY * 3.0) for day in DAYS}
    expected.update({d: (PER_DAY, PER_DAY, PER_DAY * 1.0) for d in ("2024-03-11", "2024-03-12")})
    assert per_day(clickhouse) == expected
    events = result.asset_materializations_for_node(f"{pipeline.name}__etl")
    assert sorted(e.partition for e in events) == DAYS
    # The same range again: each day's rows exactly once.
    assert pipeline.execute_in_process(resources=resources, tags=RANGE_TAGS).success
    assert per_day(clickhouse) == expected


def test_a_day_the_source_no_longer_has_is_emptied_by_a_range_run(
    clickhouse: ClickHouseResource, api: RunningApi
) -> None:
    """The source drops every record of 2024-03-04 (and corrects 03-06): the range run of
    03-01..03-10 replaces its whole window, so that day is emptied instead of keeping its
    old rows; a day outside the range is untouched."""
    pipeline = daily_pipeline(api.url, backfill_policy="single_run")
    resources = {"clickhouse": clickhouse}
    assert pipeline.execute_in_process(resources=resources, tags=RANGE_TAGS).success
    assert pipeline.execute_in_process(resources=resources, partition_key="2024-03-11").success
    api.state.records = [
        {**r, "price": 2.0} if r["day"] == "2024-03-06" else r
        for r in day_records()
        if r["day"] != "2024-03-04"
    ]
    result = pipeline.execute_in_process(resources=resources, tags=RANGE_TAGS)
    assert result.success
    expected = {day: (PER_DAY, PER_DAY, PER_DAY * 1.0) for day in [*DAYS, "2024-03-11"]}
    del expected["2024-03-04"]
    expected["2024-03-06"] = (PER_DAY, PER_DAY, PER_DAY * 2.0)
    assert per_day(clickhouse) == expected


def test_rows_outside_the_window_fail_the_run_before_the_load(
    clickhouse: ClickHouseResource, api: RunningApi
) -> None:
    # A parameter the API ignores: it answers every day, which must not reach the table.
    pipeline = daily_pipeline(api.url, window_params={"day": "{start:%Y-%m-%d}"})
    result = pipeline.execute_in_process(
        resources={"clickhouse": clickhouse}, partition_key="2024-03-03", raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    text = str(failure.step_failure_data.user_failure_data.description)
    assert "outside partition 2024-03-03" in text and "'updated_at'" in text
    assert failure.step_key.endswith("__window")
    assert not clickhouse.query_rows(
        "SELECT name FROM system.tables WHERE name = {t:String}", {"t": TABLE}
    )


def test_a_table_partitioned_otherwise_is_refused(
    clickhouse: ClickHouseResource, api: RunningApi
) -> None:
    with clickhouse.get_client() as client:
        client.command(
            f"CREATE TABLE {TABLE} (id Int64, day String, price Float64, "
            "updated_at DateTime64(6, 'UTC')) ENGINE = MergeTree "
            "PARTITION BY toYYYYMM(updated_at) ORDER BY id"
        )
    result = daily_pipeline(api.url).execute_in_process(
        resources={"clickhouse": clickhouse}, partition_key="2024-03-03", raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    text = str(failure.step_failure_data.user_failure_data.description)
    assert "is partitioned by 'toYYYYMM(updated_at)'" in text
    assert "PARTITION BY toYYYYMMDD(`updated_at`, 'UTC')" in text
    assert clickhouse.query_rows(f"SELECT count() FROM {TABLE}") == [(0,)]


def test_upsert_checks_unique_keys_per_partition(
    clickhouse: ClickHouseResource, api: RunningApi
) -> None:
    pipeline = daily_pipeline(api.url, mode="upsert", key_columns=("id",))
    resources = {"clickhouse": clickhouse}
    for day in ("2024-03-01", "2024-03-02", "2024-03-02"):
        result = pipeline.execute_in_process(resources=resources, partition_key=day)
        assert result.success
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert checks["unique_keys"].passed, checks["unique_keys"].description
        assert "partition's window" in str(checks["unique_keys"].description)
        assert {e.partition for e in checks.values()} == {day}
    rows = clickhouse.query_rows(f"SELECT count() FROM {TABLE} FINAL")
    assert rows == [(2 * PER_DAY,)]


def test_sql_steps_are_partitioned_with_the_table(
    clickhouse: ClickHouseResource, api: RunningApi
) -> None:
    pipeline = create_etl_pipeline(
        name="daily_counts",
        extractor=create_http_extractor(
            f"{api.url}/single",
            window_params={"updated_from": "{start}", "updated_before": "{end}"},
        ),
        transformer=parse_times,
        loader=create_clickhouse_loader(TABLE, mode="replace_partitions", order_by=["id"]),
        partitions=daily_partitions("2024-03-01"),
        time_column="updated_at",
        backfill_policy="single_run",
        sql_steps=[
            create_sql_step(
                f"SELECT toDate(updated_at) AS day, count() AS n FROM {TABLE} GROUP BY day",
                "daily_counts",
                order_by=["day"],
            )
        ],
    )
    assert all(a.partitions_def is not None for a in pipeline.assets)
    resources = {"clickhouse": clickhouse}
    assert pipeline.execute_in_process(resources=resources, partition_key="2024-03-09").success
    result = pipeline.execute_in_process(resources=resources, tags=RANGE_TAGS)
    assert result.success
    assert clickhouse.query_rows("SELECT toString(day), n FROM daily_counts ORDER BY day") == [
        (day, PER_DAY) for day in DAYS
    ]
    # One range run: the table's checks evaluated once, for the range.
    names = sorted(e.check_name for e in result.get_asset_check_evaluations())
    assert names == ["columns_match", "columns_match", "rows_loaded"]


def test_the_scheduled_tick_after_a_dst_change_loads_the_23_hour_day(
    clickhouse: ClickHouseResource,
) -> None:
    # Berlin days around the spring change; records every 4 hours UTC from 29 March.
    records = day_records(5, first=datetime(2024, 3, 29, tzinfo=UTC))
    with serve_api(ApiState(records=records)) as running:
        pipeline = daily_pipeline(running.url, schedule="0 6 * * *", timezone="Europe/Berlin")
        defs = Definitions(
            assets=[*pipeline.sources, *pipeline.assets],
            asset_checks=list(pipeline.asset_checks),
            jobs=[pipeline.job],
            schedules=[pipeline.schedule],
            resources={"clickhouse": clickhouse},
        )
        tick = datetime(2024, 4, 1, 6, 0, tzinfo=ZoneInfo("Europe/Berlin"))
        schedule = defs.resolve_schedule_def(f"{pipeline.name}_schedule")
        (request,) = (
            schedule.evaluate_tick(
                build_schedule_context(scheduled_execution_time=tick)
            ).run_requests
            or []
        )
        assert request.partition_key == "2024-03-31"
        job = defs.resolve_job_def(pipeline.name)
        assert job.execute_in_process(partition_key=request.partition_key).success
        assert running.state.requests_to("/single") == [
            {
                "updated_from": "2024-03-31T00:00:00+01:00",
                "updated_before": "2024-04-01T00:00:00+02:00",
            }
        ]
    # 23 Berlin hours: 2024-03-30 23:00 UTC to 2024-03-31 22:00 UTC (records at 00, 04, ...
    # 20 h UTC of the 31st).
    assert clickhouse.query_rows(
        f"SELECT toString(min(updated_at)), toString(max(updated_at)), count() FROM {TABLE}"
    ) == [("2024-03-31 00:00:00.000000", "2024-03-31 20:00:00.000000", PER_DAY)]
    assert clickhouse.query_rows(
        "SELECT partition_key FROM system.tables WHERE name = {t:String}", {"t": TABLE}
    ) == [("toYYYYMMDD(updated_at, 'Europe/Berlin')",)]


def test_a_migration_table_partitioned_by_day_of_its_utc_column_is_accepted(
    clickhouse: ClickHouseResource, api: RunningApi
) -> None:
    with clickhouse.get_client() as client:
        client.command(
            f"CREATE TABLE {TABLE} (id Int64, day String, price Float64, "
            "updated_at DateTime64(6, 'UTC')) ENGINE = MergeTree "
            "PARTITION BY toYYYYMMDD(updated_at) ORDER BY id"
        )
    pipeline = daily_pipeline(api.url)
    for day in ("2024-03-02", "2024-03-03", "2024-03-02"):
        result = pipeline.execute_in_process(
            resources={"clickhouse": clickhouse}, partition_key=day
        )
        assert result.success
    assert per_day(clickhouse) == {
        day: (PER_DAY, PER_DAY, PER_DAY * 1.0) for day in ("2024-03-02", "2024-03-03")
    }
