"""Partitioned pipelines in YAML: a ``partitions`` block, ``time_column``, ``backfill_policy`` and
the sources' window options build the same job as ``create_etl_pipeline(partitions=...)`` and
read exactly the window of each run (HTTP API and Metabase stand-in, real ClickHouse)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import (
    BackfillPolicy,
    DailyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    StaticPartitionsDefinition,
)

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.sources.metabase.resource import MetabaseResource
from dataproc_dagster_tests.helpers.components import definitions_snapshot, load_yaml_folder
from dataproc_dagster_tests.integration.partitions.daily_api import PER_DAY, day_records
from dataproc_dagster_tests.servers.http_api import ApiState, serve_api
from dataproc_dagster_tests.servers.metabase_fixtures import (  # noqa: F401 (fixture)
    StandinSetup,
    metabase,
)

DAILY = """\
type: dataproc_dagster.components.EtlPipelineComponent
attributes:
  name: yaml_daily_items
  source:
    http:
      url: "{{ env.DAILY_API }}/single"
      window_params:
        updated_from: "{start:%Y-%m-%d}"
        updated_before: "{end:%Y-%m-%d}"
  transformers:
    - dataproc_dagster_tests.integration.partitions.daily_api.parse_times
  loader:
    table: yaml_daily_items
    mode: replace_partitions
    order_by: [id]
  partitions:
    daily:
      start: "2024-03-01"
  time_column: updated_at
  backfill_policy: single_run
  schedule: "0 6 * * *"
  timezone: Europe/Berlin
requirements:
  env: [DAILY_API]
"""


def per_day(clickhouse: ClickHouseResource) -> dict[str, int]:
    rows = clickhouse.query_rows(
        "SELECT toString(toDate(updated_at, 'Europe/Berlin')), count() FROM yaml_daily_items "
        "GROUP BY 1 ORDER BY 1"
    )
    return {day: int(n) for day, n in rows}


def test_daily_yaml_pipeline_reads_its_window_and_backfills_in_one_run(
    clickhouse: ClickHouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_api(ApiState(records=day_records())) as api:
        monkeypatch.setenv("DAILY_API", api.url)
        defs, [pipeline] = load_yaml_folder(tmp_path, monkeypatch, {"yaml_daily_items": DAILY})
        # The partitions take the pipeline's time zone; the schedule runs the day that closed.
        (partitions,) = {a.partitions_def for a in pipeline.assets}
        assert isinstance(partitions, DailyPartitionsDefinition)
        assert partitions.timezone == "Europe/Berlin"
        assert partitions.start.strftime("%Y-%m-%d") == "2024-03-01"
        assert definitions_snapshot(defs)["schedules"] == {
            "yaml_daily_items_schedule": {
                "cron": "0 6 * * *",
                "timezone": "Europe/Berlin",
                "job": "yaml_daily_items",
            }
        }
        assert {a.backfill_policy for a in pipeline.assets} == {BackfillPolicy.single_run()}

        resources = {"clickhouse": clickhouse}
        result = pipeline.execute_in_process(resources=resources, partition_key="2024-03-03")
        assert result.success
        assert api.state.requests_to("/single") == [
            {"updated_from": "2024-03-03", "updated_before": "2024-03-04"}
        ]
        # A single-run backfill of four days: one request for the range's whole window.
        range_tags = {
            "dagster/asset_partition_range_start": "2024-03-05",
            "dagster/asset_partition_range_end": "2024-03-08",
        }
        result = pipeline.execute_in_process(resources=resources, tags=range_tags)
        assert result.success
        assert api.state.requests_to("/single")[1:] == [
            {"updated_from": "2024-03-05", "updated_before": "2024-03-09"}
        ]
    # Berlin days: 00:00 and 04:00 UTC of a day are 01:00 and 05:00 there, and 20:00 UTC is
    # 21:00; the API sent whole UTC days, the time column put each row on its Berlin day.
    days = per_day(clickhouse)
    assert sum(days.values()) == 5 * PER_DAY
    assert set(days) == {"2024-03-03", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"}
    assert clickhouse.query_rows(
        "SELECT partition_key FROM system.tables WHERE name = 'yaml_daily_items'"
    ) == [("toYYYYMMDD(updated_at, 'Europe/Berlin')",)]


def test_static_and_monthly_partitions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    static = DAILY.replace(
        '    daily:\n      start: "2024-03-01"\n', "    static: [north, south]\n"
    ).replace("  time_column: updated_at\n  backfill_policy: single_run\n", "")
    static = static.replace("yaml_daily_items", "yaml_regions").replace(
        "mode: replace_partitions", "mode: append"
    )
    static = static.replace('  schedule: "0 6 * * *"\n', "")
    monthly = DAILY.replace(
        '    daily:\n      start: "2024-03-01"\n',
        '    monthly:\n      start: "2024-01-01"\n      timezone: Europe/Berlin\n',
    ).replace("yaml_daily_items", "yaml_monthly")
    monkeypatch.setenv("DAILY_API", "http://127.0.0.1:9")
    _, pipelines = load_yaml_folder(
        tmp_path, monkeypatch, {"yaml_regions": static, "yaml_monthly": monthly}
    )
    by_name = {p.name: p.assets[0].partitions_def for p in pipelines}
    assert isinstance(by_name["yaml_regions"], StaticPartitionsDefinition)
    assert by_name["yaml_regions"].get_partition_keys() == ["north", "south"]
    assert isinstance(by_name["yaml_monthly"], MonthlyPartitionsDefinition)
    assert by_name["yaml_monthly"].timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (
                '    daily:\n      start: "2024-03-01"\n',
                '    daily: {start: "2024-03-01"}\n    hourly: {start: "2024-03-01-00:00"}\n',
            ),
            "partitions takes exactly one of daily, hourly, weekly, monthly or static "
            "(got daily, hourly)",
        ),
        (('start: "2024-03-01"', 'start: "March first"'), "invalid daily partitions"),
        (('  partitions:\n    daily:\n      start: "2024-03-01"\n', ""), "partitioned"),
        (("backfill_policy: single_run", "backfill_policy: all_at_once"), "backfill_policy"),
        (('      start: "2024-03-01"\n', '      start: "2024-03-01"\n      every: 2\n'), "every"),
    ],
    ids=["two_grains", "bad_start", "time_column_without_partitions", "bad_policy", "typo"],
)
def test_wrong_partitions_are_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in DAILY
    monkeypatch.setenv("DAILY_API", "http://127.0.0.1:9")
    with pytest.raises(Exception) as raised:
        load_yaml_folder(tmp_path, monkeypatch, {"bad_daily": DAILY.replace(old, new)})
    error = str(raised.value.__cause__ or raised.value)
    assert message in error, error


METABASE_DAILY = """\
type: dataproc_dagster.components.EtlPipelineComponent
attributes:
  name: yaml_orders_daily
  source:
    metabase:
      database_name: Sales
      native_query: >-
        SELECT id, amount, order_day FROM "PUBLIC"."ORDERS"
        WHERE order_day >= {{start}} AND order_day < {{end}}
      order_by: id
      window_parameters:
        start: "{start:%Y-%m-%d}"
        end: "{end:%Y-%m-%d}"
  loader:
    table: yaml_orders_daily
    mode: replace_partitions
    order_by: [id]
  partitions:
    daily: {start: "2024-01-01"}
  time_column: order_day
"""


def test_metabase_native_query_keeps_its_variables_and_gets_the_window(
    clickhouse: ClickHouseResource,
    metabase: StandinSetup,  # noqa: F811 (fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``{{start}}`` in a native query is a Metabase variable: the component leaves it as
    written (no template rendering) and the run sends the window as its parameters."""
    _, [pipeline] = load_yaml_folder(tmp_path, monkeypatch, {"yaml_orders": METABASE_DAILY})
    resources: dict[str, Any] = {
        "clickhouse": clickhouse,
        "metabase": MetabaseResource(
            base_url=metabase.url, api_key=metabase.server.api_key, retry_backoff=0.01
        ),
    }
    result = pipeline.execute_in_process(resources=resources, partition_key="2024-01-05")
    assert result.success
    metabase.assert_native_window("2024-01-05", "2024-01-06")
    assert clickhouse.query_rows(
        "SELECT toString(toDate(order_day)), count(), min(id), max(id) FROM yaml_orders_daily "
        "GROUP BY 1"
    ) == [("2024-01-05", 13, 4, 4804)]
