"""No SQL from configuration: hostile names and expressions fail before any table is created."""
# ruff: noqa: F401, F811 - the stand-in fixtures are imported by name, then requested by name

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from dagster import ExecuteInProcessResult

from dataproc_dagster import create_clickhouse_loader
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.clickhouse.sql_safety import check_expression, check_identifier
from dataproc_dagster.clickhouse.tables import create_table_sql
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.generic_jobs.http_to_clickhouse import PIPELINE as HTTP_PIPELINE
from dataproc_dagster.generic_jobs.metabase import METABASE_TO_CLICKHOUSE
from dataproc_dagster.sources.metabase.resource import MetabaseResource
from dataproc_dagster_tests.helpers.http_support import api_fixture
from dataproc_dagster_tests.helpers.pipelines import failure_message
from dataproc_dagster_tests.servers.http_api import RunningApi
from dataproc_dagster_tests.servers.metabase_fixtures import StandinSetup, metabase

INJECTION = "id SETTINGS index_granularity = 1; DROP TABLE IF EXISTS default.sentinel; SELECT 1"
HOSTILE_LOADS: list[tuple[str, dict[str, Any]]] = [
    ("partition_by", {"table": "pinj2", "partition_by": INJECTION}),
    ("partition_by", {"table": "pinj2", "partition_by": "id) ORDER BY id; DROP TABLE sentinel"}),
    ("partition_by", {"table": "pinj2", "partition_by": "cityHash64(file('/etc/passwd'))"}),
    ("partition_by", {"table": "pinj2", "partition_by": "id IN (SELECT 1 FROM sentinel)"}),
    ("partition_by", {"table": "pinj2", "partition_by": "id /* x */"}),
    ("order_by", {"table": "pinj2", "order_by": ["id`); DROP TABLE default.sentinel; --"]}),
    ("table", {"table": "pinj2` (x Int8) ENGINE = Memory; DROP TABLE default.sentinel; --"}),
    ("table", {"table": "default.sentinel; DROP TABLE default.sentinel"}),
    ("key_columns", {"table": "pinj2", "mode": "upsert", "key_columns": ["id'; DROP"]}),
]


def _tables(clickhouse: ClickHouseResource) -> set[str]:
    rows = clickhouse.query_rows("SELECT name FROM system.tables WHERE database = 'default'")
    return {row[0] for row in rows}


@pytest.fixture
def sentinel(clickhouse: ClickHouseResource) -> ClickHouseResource:
    clickhouse.command("CREATE TABLE default.sentinel (x UInt8) ENGINE = MergeTree ORDER BY x")
    clickhouse.command("INSERT INTO default.sentinel VALUES (7)")
    return clickhouse


def _run_http_job(
    api: RunningApi, clickhouse: ClickHouseResource, load: dict[str, Any]
) -> ExecuteInProcessResult:
    """The generic HTTP job reading the test API's pages, with ``load`` as its load config."""
    return HTTP_PIPELINE.job.execute_in_process(
        run_config={
            "ops": {
                "http_to_clickhouse__extract": {
                    "config": {"url": api.url + "/pages", "records_path": "data.items"}
                },
                "http_to_clickhouse__load": {"config": load},
            }
        },
        resources={"clickhouse": clickhouse},
        raise_on_error=False,
    )


def _assert_refused(
    result: ExecuteInProcessResult, clickhouse: ClickHouseResource, option: str
) -> None:
    assert not result.success
    message = failure_message(result)
    assert option in message and "Fix:" in message, message
    assert clickhouse.query_rows("SELECT x FROM default.sentinel") == [(7,)]
    assert _tables(clickhouse) == {"sentinel"}  # no target, no staging, no ledger table


def test_the_reported_injection_fails_before_any_table_is_created(
    api: RunningApi, sentinel: ClickHouseResource
) -> None:
    result = _run_http_job(api, sentinel, {"table": "pinj2", "partition_by": INJECTION})
    _assert_refused(result, sentinel, "partition_by")
    message = failure_message(result)
    assert "SETTINGS" in message and INJECTION in message


@pytest.mark.parametrize(("option", "load"), HOSTILE_LOADS)
def test_http_job_refuses_hostile_load_config(
    api: RunningApi, sentinel: ClickHouseResource, option: str, load: dict[str, Any]
) -> None:
    result = _run_http_job(api, sentinel, load)
    _assert_refused(result, sentinel, option)


@pytest.mark.parametrize(("option", "load"), HOSTILE_LOADS[::3])
def test_metabase_job_refuses_hostile_load_config(
    sentinel: ClickHouseResource, metabase: StandinSetup, option: str, load: dict[str, Any]
) -> None:
    result = METABASE_TO_CLICKHOUSE.job.execute_in_process(
        run_config={
            "ops": {
                "metabase_to_clickhouse__extract": {
                    "config": {"database_name": "Sales", "schema": "PUBLIC", "table_name": "ORDERS"}
                },
                "metabase_to_clickhouse__load": {"config": load},
            }
        },
        resources={
            "clickhouse": sentinel,
            "metabase": MetabaseResource(
                base_url=metabase.url, api_key=metabase.server.api_key, retry_backoff=0.01
            ),
        },
        raise_on_error=False,
    )
    _assert_refused(result, sentinel, option)


def test_a_valid_partition_expression_still_loads(
    api: RunningApi, clickhouse: ClickHouseResource
) -> None:
    result = _run_http_job(
        api,
        clickhouse,
        {
            "table": "items",
            "mode": "replace_partitions",
            "partition_by": "intDiv(id, 100)",
            "order_by": ["id"],
        },
    )
    assert result.success, failure_message(result)
    rows = clickhouse.query_rows(
        "SELECT partition_key FROM system.tables WHERE database = 'default' AND name = 'items'"
    )
    assert rows == [("intDiv(id, 100)",)]
    assert clickhouse.query_rows("SELECT count() FROM items")[0][0] > 0


def test_run_config_table_in_a_missing_database_is_refused(
    api: RunningApi, clickhouse: ClickHouseResource
) -> None:
    result = HTTP_PIPELINE.job.execute_in_process(
        run_config={
            "ops": {
                "http_to_clickhouse__extract": {
                    "config": {"url": api.url + "/pages", "records_path": "data.items"}
                },
                "http_to_clickhouse__load": {"config": {"table": "nosuchdb.items"}},
            }
        },
        resources={"clickhouse": clickhouse},
        raise_on_error=False,
    )
    assert not result.success
    message = failure_message(result)
    assert "'nosuchdb'" in message and "does not exist" in message and "table" in message
    databases = {row[0] for row in clickhouse.query_rows("SELECT name FROM system.databases")}
    assert "nosuchdb" not in databases


def test_pipeline_code_with_a_hostile_partition_fails_at_definition_time() -> None:
    with pytest.raises(ConfigError, match="partition_by must be one ClickHouse expression"):
        create_clickhouse_loader("events", partition_by=INJECTION)
    with pytest.raises(ConfigError, match="order_by item holds a quote"):
        create_clickhouse_loader("events", order_by=["id`) SETTINGS x = 1 --"])
    with pytest.raises(ConfigError, match="table may hold only letters"):
        create_clickhouse_loader("events; DROP TABLE sentinel")


def test_create_table_sql_checks_its_expressions() -> None:
    schema = pa.schema([pa.field("id", pa.int64())])
    with pytest.raises(ConfigError, match="partition_by"):
        create_table_sql("default", "t", schema, set(), partition_by=INJECTION)
    with pytest.raises(ConfigError, match="engine"):
        create_table_sql("default", "t", schema, set(), engine="Memory; DROP TABLE sentinel")
    sql = create_table_sql("default", "t", schema, set(), partition_by="intDiv(id, 10)")
    assert "PARTITION BY intDiv(id, 10)" in sql


@pytest.mark.parametrize(
    "expression",
    ["toYYYYMM(created_at)", "(country, toDate(ts))", "intDiv(id, 100)", "CAST(x AS Date)",
     "'a;b' || `we;ird`", "if(a = 'x -- y', 1, 2)"],
)  # fmt: skip
def test_plain_expressions_pass(expression: str) -> None:
    assert check_expression(expression, option="partition_by") == expression


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("", "is empty"),
        ("a, b", "top-level comma"),
        ("id; SELECT 1", "';'"),
        ("id -- x", "comment"),
        ("id # x", "comment"),
        ("id FORMAT JSON", "FORMAT"),
        ("id INTO OUTFILE '/tmp/x'", "INTO"),
        ("(SELECT 1)", "SELECT"),
        ("remote('h', db.t)", "remote()"),
        ("toDate(ts", "unbalanced"),
        ("'open", "unterminated"),
        ("a AS b", "alias"),
    ],
)
def test_anything_but_one_expression_is_refused(expression: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_expression(expression, option="partition_by")
    assert reason in str(caught.value) and "partition_by" in str(caught.value)


def test_the_engine_parser_refuses_what_the_grammar_lets_through(
    clickhouse: ClickHouseResource,
) -> None:
    from dataproc_dagster.clickhouse.sql_safety import check_expression_with_engine

    with clickhouse.get_client() as client:
        assert check_expression_with_engine(client, "toDate(ts)", option="partition_by")
        for bad in ("1 +", "a b"):
            with pytest.raises(ConfigError, match="partition_by"):
                check_expression_with_engine(client, bad, option="partition_by")


def test_names_are_checked() -> None:
    assert check_identifier("user name", option="order_by item") == "user name"
    with pytest.raises(ConfigError, match="only letters"):
        check_identifier("my-table", option="table", kind="table")
    with pytest.raises(ConfigError, match="empty"):
        check_identifier("", option="order_by item")


def test_a_command_holding_two_statements_is_refused(sentinel: ClickHouseResource) -> None:
    with sentinel.get_client() as client, pytest.raises(ConfigError, match="2 statements"):
        client.command("SELECT 1; DROP TABLE default.sentinel")
    with sentinel.get_client() as client:
        assert client.command("SELECT 'a;b' -- one statement;") == "a;b"
    assert sentinel.query_rows("SELECT x FROM default.sentinel") == [(7,)]


def test_sql_steps_and_incremental_cursors_check_their_names() -> None:
    from dataproc_dagster import create_sql_step
    from dataproc_dagster.sources.http.incremental import Incremental

    with pytest.raises(ConfigError, match="create_sql_step engine"):
        create_sql_step("SELECT 1 AS x", "t", engine="Memory; DROP TABLE sentinel")
    with pytest.raises(ConfigError, match="2 statements"):
        create_sql_step("SELECT 1 AS x; DROP TABLE sentinel", "t")
    with pytest.raises(ConfigError, match="create_sql_step table"):
        create_sql_step("SELECT 1 AS x", "t`; DROP TABLE sentinel")
    assert create_sql_step("SELECT 1 AS x;", "db.t", engine="ReplacingMergeTree(x)").table == "db.t"
    with pytest.raises(ConfigError, match="incremental cursor_field"):
        Incremental(cursor_field="updated_at`) FROM sentinel --", param="since")
    with pytest.raises(ConfigError, match="incremental table"):
        Incremental(cursor_field="updated_at", param="since", table="x; DROP")
    assert Incremental(cursor_field="meta.updated at", param="since").column == "meta_updated at"
