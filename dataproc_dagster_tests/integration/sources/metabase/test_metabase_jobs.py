"""The Metabase jobs run for real: stand-in Metabase -> Dagster -> embedded ClickHouse."""
# ruff: noqa: F401, F811 - the stand-in fixtures are imported by name, then requested by name

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import ExecuteInProcessResult

from dataproc_dagster import create_clickhouse_loader, create_etl_pipeline
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.generic_jobs.metabase import METABASE_TO_CLICKHOUSE, metabase_catalog
from dataproc_dagster.pipeline.registry import discover_pipelines
from dataproc_dagster.sources.metabase.extractor import create_metabase_extractor
from dataproc_dagster.sources.metabase.resource import MetabaseResource
from dataproc_dagster_tests.helpers.cli import job_execute_command, run_dagster
from dataproc_dagster_tests.helpers.pipelines import failure_message
from dataproc_dagster_tests.servers.metabase_fixtures import (
    BIG_ROWS,
    ORDERS_ROWS,
    CappedSetup,
    StandinSetup,
    download_capped,
    metabase,
)
from dataproc_dagster_tests.servers.metabase_standin import JS_MAX_SAFE, sample_rows

REPO = Path(__file__).resolve().parents[4]
EXTRACT = "metabase_to_clickhouse__extract"
LOAD = "metabase_to_clickhouse__load"


def _resources(clickhouse: ClickHouseResource, setup: StandinSetup, **options: Any) -> dict:
    values: dict[str, Any] = {
        "base_url": setup.url,
        "api_key": setup.server.api_key,
        "retry_backoff": 0.01,
    }
    values.update(options)
    return {"clickhouse": clickhouse, "metabase": MetabaseResource(**values)}


def _run(
    clickhouse: ClickHouseResource,
    setup: StandinSetup,
    source: dict[str, Any],
    target: dict[str, Any],
    **resource_options: Any,
) -> ExecuteInProcessResult:
    return METABASE_TO_CLICKHOUSE.execute_in_process(
        run_config={"ops": {EXTRACT: {"config": source}, LOAD: {"config": target}}},
        resources=_resources(clickhouse, setup, **resource_options),
        raise_on_error=False,
    )


def _all_text(result: ExecuteInProcessResult) -> str:
    parts = []
    for event in result.all_events:
        parts.append(str(event.message or ""))
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            parts.append(event.step_failure_data.error.to_string())
        parts.append(repr(getattr(event.event_specific_data, "metadata", "")))
    return "\n".join(parts)


def test_generic_job_copies_a_table_by_name_whole(
    clickhouse: ClickHouseResource, metabase: StandinSetup
) -> None:
    result = _run(
        clickhouse,
        metabase,
        {"database_name": "Sales", "schema": "PUBLIC", "table_name": "ORDERS", "page_size": 2000},
        {"table": "orders", "mode": "replace"},
    )
    assert result.success, failure_message(result)
    rows = clickhouse.query_rows(
        "SELECT count(), min(id), max(id), max(big_id), countIf(customer = 'Zoë') FROM orders"
    )
    assert rows == [(ORDERS_ROWS, 1, ORDERS_ROWS, JS_MAX_SAFE + ORDERS_ROWS, 625)]
    types = dict(
        clickhouse.query_rows("SELECT name, type FROM system.columns WHERE table = 'orders'")
    )
    assert "Int64" in types["big_id"] and "DateTime64" in types["created_at"]
    assert "Bool" in types["paid"] and "String" in types["customer"]
    extract = next(
        e for e in result.all_events if e.is_successful_output and e.step_key.endswith("extract")
    )
    figures = extract.event_specific_data.metadata  # type: ignore[union-attr]
    assert figures["metabase_pages"].value == -(-ORDERS_ROWS // 2000)
    assert figures["metabase_requests"].value >= figures["metabase_pages"].value
    # Rerun with replace: same rows, not twice as many.
    again = _run(
        clickhouse,
        metabase,
        {"database_id": metabase.sales_id, "table_id": metabase.orders_id},
        {"table": "orders", "mode": "replace"},
    )
    assert again.success, failure_message(again)
    assert clickhouse.query_rows("SELECT count() FROM orders") == [(ORDERS_ROWS,)]


def test_generic_job_runs_a_native_query_paged(
    clickhouse: ClickHouseResource, metabase: StandinSetup
) -> None:
    metabase.server.honour_constraints = False  # force real 2000-row pages
    result = _run(
        clickhouse,
        metabase,
        {
            "database_id": metabase.sales_id,
            "native_query": "SELECT id, customer, amount FROM PUBLIC.ORDERS WHERE id <= 4500",
            "order_by": "id",
        },
        {"table": "native_orders"},
    )
    assert result.success, failure_message(result)
    assert clickhouse.query_rows(
        "SELECT count(), uniqExact(id), countIf(amount IS NULL) FROM native_orders"
    ) == [(4500, 4500, 409)]


def test_failed_query_fails_the_run_and_leaves_no_table(
    clickhouse: ClickHouseResource, metabase: StandinSetup
) -> None:
    result = _run(
        clickhouse,
        metabase,
        {"database_name": "Sales", "native_query": "SELECT nope FROM PUBLIC.ORDERS"},
        {"table": "never"},
    )
    assert not result.success
    message = failure_message(result)
    assert "[pipeline metabase_to_clickhouse]" in message
    assert "no such column: nope" in message and "database 1 (Sales)" in message
    assert "SELECT nope FROM PUBLIC.ORDERS" in message
    assert clickhouse.query_rows("EXISTS TABLE never") == [(0,)]


def test_wrong_api_key_fails_clearly_and_the_key_appears_nowhere(
    clickhouse: ClickHouseResource, metabase: StandinSetup
) -> None:
    secret = "mb_this_key_is_wrong_and_secret"
    result = _run(
        clickhouse,
        metabase,
        {"database_id": metabase.sales_id, "table_id": metabase.orders_id},
        {"table": "orders"},
        api_key=secret,
    )
    assert not result.success
    message = failure_message(result)
    assert "API key was refused" in message and "METABASE_API_KEY" in message
    assert secret not in _all_text(result)


def test_run_config_naming_no_source_is_a_config_error(
    clickhouse: ClickHouseResource, metabase: StandinSetup
) -> None:
    result = _run(clickhouse, metabase, {"database_id": 1}, {"table": "orders"})
    assert not result.success
    message = failure_message(result)
    assert "give exactly one source" in message and "Fix:" in message


def test_a_pipeline_declares_a_metabase_source_in_three_lines(
    clickhouse: ClickHouseResource, metabase: StandinSetup
) -> None:
    source = create_metabase_extractor(
        database_name="Sales", schema="ANALYTICS", table_name="ORDERS"
    )
    pipeline = create_etl_pipeline("mb_orders", source, create_clickhouse_loader("mb_orders"))
    result = pipeline.execute_in_process(
        resources=_resources(clickhouse, metabase), raise_on_error=False
    )
    assert result.success, failure_message(result)
    assert clickhouse.query_rows("SELECT count(), max(id) FROM mb_orders") == [(10, 10)]


THREE_LINE_MODULE = """
import dataproc_dagster as dp
source = dp.create_metabase_extractor(database_name="Sales", schema="PUBLIC", table_name="PEOPLE")
people = dp.create_etl_pipeline("mb_people", source, dp.create_clickhouse_loader("people"))
"""


def test_a_three_line_pipeline_module_is_discovered_and_runs(
    clickhouse: ClickHouseResource,
    metabase: StandinSetup,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = tmp_path / "mb_pipelines_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "people.py").write_text(THREE_LINE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    [pipeline] = discover_pipelines("mb_pipelines_pkg")
    assert pipeline.name == "mb_people" and pipeline.module == "mb_pipelines_pkg.people"
    result = pipeline.execute_in_process(
        resources=_resources(clickhouse, metabase), raise_on_error=False
    )
    assert result.success, failure_message(result)
    assert clickhouse.query_rows("SELECT count(), countIf(name = 'person 30') FROM people") == [
        (30, 1)
    ]
    columns = [row[0] for row in clickhouse.query_rows("DESCRIBE TABLE people")]
    assert "password_hash" not in columns  # a sensitive field stays out


def test_session_login_through_the_resource(
    clickhouse: ClickHouseResource, metabase: StandinSetup
) -> None:
    server = metabase.server
    result = _run(
        clickhouse,
        metabase,
        {"database_name": "Ops", "table_name": "types"},
        {"table": "types"},
        api_key="",
        username=server.username,
        password=server.password,
    )
    assert result.success, failure_message(result)
    assert server.count("POST", "/api/session") == 1 and server.count("DELETE", "/api/session") == 1
    assert clickhouse.query_rows("SELECT big FROM types ORDER BY id") == [
        (2**62 + 7,),
        (None,),
        (-(2**53) - 1,),
    ]
    assert server.password not in _all_text(result)


def test_catalog_job_reports_markdown_metadata(metabase: StandinSetup, data_dir: Path) -> None:
    resource = MetabaseResource(base_url=metabase.url, api_key=metabase.server.api_key)
    result = metabase_catalog.execute_in_process(
        run_config={"ops": {"read_metabase_catalog": {"config": {"table_id": metabase.orders_id}}}},
        resources={"metabase": resource},
    )
    assert result.success
    output = result.output_for_node("read_metabase_catalog")
    assert {"id": metabase.orders_id, "db_id": 1, "schema": "PUBLIC", "name": "ORDERS"} in output[
        "tables"
    ]
    event = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = event.event_specific_data.metadata  # type: ignore[union-attr]
    catalog = metadata["catalog"].value
    assert "| Sales | 1 | h2 | PUBLIC | ORDERS |" in catalog and "| Ops |" in catalog
    assert "| big_id |" in metadata["fields"].value
    assert metadata["tables"].value == 5  # the hidden AUDIT_LOG is left out


def test_generic_job_through_dagster_job_execute(
    metabase: StandinSetup, data_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "metabase_to_clickhouse.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ops": {
                    EXTRACT: {
                        "config": {
                            "database_name": "Sales",
                            "schema": "PUBLIC",
                            "table_name": "ORDERS",
                        }
                    },
                    LOAD: {"config": {"table": "cli_orders", "mode": "replace"}},
                }
            }
        )
    )
    clickhouse = _execute_cli(metabase, config, data_dir, tmp_path)
    assert clickhouse.query_rows("SELECT count(), max(id) FROM cli_orders") == [
        (ORDERS_ROWS, ORDERS_ROWS)
    ]


@pytest.mark.parametrize("method", ["export", "dataset"])
def test_export_under_a_download_limit_loads_every_row_or_fails(
    clickhouse: ClickHouseResource, download_capped: CappedSetup, method: str
) -> None:
    setup = download_capped.setup
    # A proxy's 500 page once on the way: retried, not a failed run.
    path = "/api/dataset/json" if method == "export" else "/api/dataset"
    setup.server.add_fault(path, status=500, body="<html>500</html>", content_type="text/html")
    result = _run(
        clickhouse,
        setup,
        {
            "database_name": "Sales",
            "schema": "PUBLIC",
            "table_name": "BIG_ORDERS",
            "method": method,
        },
        {"table": "big_orders", "mode": "replace"},
    )
    assert result.success, failure_message(result)
    landed = clickhouse.query_rows("SELECT id, customer, big_id FROM big_orders ORDER BY id")
    expected = [(row[0], row[1], row[3]) for row in sample_rows(BIG_ROWS)]
    assert landed == expected  # all 5,321 rows, each exactly once

    # Native SQL without order_by cannot be paged: cut at the limit, the run fails instead.
    native = _run(
        clickhouse,
        setup,
        {
            "database_id": setup.sales_id,
            "native_query": "SELECT id FROM PUBLIC.BIG_ORDERS",
            "method": method,
        },
        {"table": "native_big", "mode": "replace"},
    )
    if method == "export":
        message = failure_message(native)
        assert f"returned {download_capped.limit} rows" in message and "set order_by" in message
        assert clickhouse.query_rows("EXISTS TABLE native_big") == [(0,)]
    else:  # the download limit is for downloads only; /api/dataset answers every row
        assert native.success, failure_message(native)
        assert clickhouse.query_rows("SELECT count() FROM native_big") == [(BIG_ROWS,)]


def _docs_resource_block() -> dict[str, Any]:
    """The run config block that docs/metabase-extractor.md gives for the resource's retries."""
    text = (REPO / "docs" / "metabase-extractor.md").read_text()
    section = text.split("### Retries from run config", 1)[1]
    block = section.split("```yaml", 1)[1].split("```", 1)[0]
    loaded: dict[str, Any] = yaml.safe_load(block)
    return loaded


def test_the_documented_run_config_sets_the_resources_retries(
    metabase: StandinSetup, data_dir: Path, tmp_path: Path
) -> None:
    config = _docs_resource_block()
    retries = config["resources"]["metabase"]["config"]
    assert retries["max_retries"] == 8 and retries["retry_backoff"] == 0.1
    retries["retry_backoff"] = 0.01  # the same block, quicker
    config["ops"] = {
        EXTRACT: {"config": {"database_id": metabase.sales_id, "table_id": metabase.people_id}},
        LOAD: {"config": {"table": "people", "mode": "replace"}},
    }
    config_file = tmp_path / "metabase_retries.yaml"
    config_file.write_text(yaml.safe_dump(config))
    # Six 503s in a row: the default 5 retries would give up, the 8 from run config do not.
    metabase.server.add_fault("/api/dataset", status=503, times=6)
    clickhouse = _execute_cli(metabase, config_file, data_dir, tmp_path)
    assert metabase.server.count("POST", "/api/dataset") >= 7
    assert clickhouse.query_rows("SELECT count(), max(id) FROM people") == [(30, 30)]


def _execute_cli(
    metabase: StandinSetup, config: Path, data_dir: Path, tmp_path: Path
) -> ClickHouseResource:
    """Run ``metabase_to_clickhouse`` with ``dagster job execute``; the embedded ClickHouse."""
    done = run_dagster(
        job_execute_command("metabase_to_clickhouse", config),
        data_dir,
        tmp_path / "dagster_home",
        extra_env={"METABASE_BASE_URL": metabase.url, "METABASE_API_KEY": metabase.server.api_key},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert metabase.server.api_key not in done.stdout + done.stderr
    return ClickHouseResource(url=f"chdb://{data_dir / 'clickhouse'}")


def test_a_failing_metabase_is_named_with_its_address_in_brackets(
    clickhouse: ClickHouseResource, metabase: StandinSetup
) -> None:
    metabase.server.add_fault("/api/dataset", status=500, body="<html>500</html>", times=10)
    result = _run(
        clickhouse,
        metabase,
        {"database_id": metabase.sales_id, "table_id": metabase.people_id},
        {"table": "people"},
        max_retries=1,
    )
    message = failure_message(result)
    assert f"[Metabase {metabase.url}] POST /api/dataset failed after 2 attempts" in message
