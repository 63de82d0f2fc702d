"""The generic ``http_to_clickhouse`` job: loads, incremental reruns, failures, secrets, CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInvalidConfigError, ExecuteInProcessResult, validate_run_config

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.generic_jobs.http_to_clickhouse import PIPELINE
from dataproc_dagster.loading.loader import create_clickhouse_loader
from dataproc_dagster.pipeline.factory import create_etl_pipeline
from dataproc_dagster.sources.http.extractor import create_http_extractor
from dataproc_dagster.sources.http.incremental import Incremental
from dataproc_dagster.sources.http.pagination import offset
from dataproc_dagster_tests.helpers.cli import job_execute_command, run_dagster
from dataproc_dagster_tests.helpers.http_support import api_fixture  # noqa: F401
from dataproc_dagster_tests.servers.http_api import RunningApi, make_record

JOB = PIPELINE.job
EXTRACT = "http_to_clickhouse__extract"
LOAD = "http_to_clickhouse__load"
TOKEN = "tok-7f3a9c-secret"
REPO = Path(__file__).resolve().parents[4]


def run_config(api: RunningApi, **extract: Any) -> dict[str, Any]:
    """Run config of the generic job reading ``/pages`` with a bearer token into ``api_items``."""
    config: dict[str, Any] = {
        "url": api.url + "/pages",
        "auth": {"kind": "bearer", "secret_env": "ITEMS_API_TOKEN"},
        "paginator": {"style": "page_number", "total_pages_path": "meta.total_pages"},
        "records_path": "data.items",
        "retry": {"max_attempts": 3, "backoff": 0.01, "max_backoff": 0.05},
        "incremental": {"cursor_field": "updated_at", "param": "updated_since", "key": ["id"]},
    }
    config.update(extract)
    return {
        "ops": {
            EXTRACT: {"config": config},
            LOAD: {"config": {"table": "api_items", "mode": "append", "order_by": ["id"]}},
        }
    }


def run(clickhouse: ClickHouseResource, config: dict[str, Any]) -> ExecuteInProcessResult:
    return JOB.execute_in_process(
        run_config=config, resources={"clickhouse": clickhouse}, raise_on_error=False
    )


def loaded_rows(result: ExecuteInProcessResult) -> int:
    output = next(e for e in result.all_events if e.is_successful_output and e.step_key == LOAD)
    return int(output.event_specific_data.metadata["rows"].value)  # type: ignore[union-attr]


def failure_message(result: ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "the run was expected to fail"
    error = failures[0].event_specific_data.error  # type: ignore[union-attr]
    return str(error.message)


def table_state(clickhouse: ClickHouseResource) -> list[tuple[Any, ...]]:
    return clickhouse.query_rows(
        "SELECT count(), uniqExact(id), max(updated_at), sum(cityHash64(name, price)) "
        "FROM api_items"
    )


@pytest.fixture
def secured(api: RunningApi, monkeypatch: pytest.MonkeyPatch) -> RunningApi:
    api.state.auth = ("bearer", TOKEN)
    monkeypatch.setenv("ITEMS_API_TOKEN", TOKEN)
    return api


def test_incremental_reruns_load_only_new_rows_once(
    secured: RunningApi, clickhouse: ClickHouseResource
) -> None:
    api = secured
    first = run(clickhouse, run_config(api))
    assert first.success
    assert loaded_rows(first) == 250
    assert clickhouse.query_rows("SELECT count(), min(id), max(id) FROM api_items") == [
        (250, 1, 250)
    ]
    columns = dict(
        clickhouse.query_rows("SELECT name, type FROM system.columns WHERE table = 'api_items'")
    )
    assert columns["owner_address_city"] == "String"
    assert columns["tags"] == "Array(String)"

    again = run(clickhouse, run_config(api))
    assert again.success and loaded_rows(again) == 0
    last = api.state.requests_to("/pages")[-1]
    assert last["updated_since"] == "2024-01-01T04:09:00Z"  # the highest updated_at loaded
    # The window read is part of the load's identity: a re-execution of this run that reads
    # from a later bound is another load, not a repeat of this one.
    window = "updated_at>=2024-01-01T04:09:00Z"
    assert again.output_for_node(EXTRACT).window == window
    (load_id,) = clickhouse.query_rows(
        "SELECT load_id FROM _dataproc_loads WHERE startsWith(load_id, %(run)s)",
        {"run": again.run_id},
    )[0]
    assert load_id == f"{again.run_id}/{LOAD}@{window}"

    # New data: one row sharing the boundary timestamp (a new key) and 30 newer rows.
    boundary = dict(make_record(249), id=1001, name="late arrival")
    api.state.records = [*api.state.records, boundary, *(make_record(i) for i in range(250, 280))]
    third = run(clickhouse, run_config(api))
    assert third.success and loaded_rows(third) == 31
    assert clickhouse.query_rows("SELECT count(), uniqExact(id) FROM api_items") == [(281, 281)]
    assert clickhouse.query_rows("SELECT count() FROM api_items WHERE id = 1001") == [(1,)]


def test_concurrent_and_sequential_runs_load_the_same_rows(
    secured: RunningApi, clickhouse: ClickHouseResource
) -> None:
    config = run_config(secured, concurrency=1, incremental=None)
    assert run(clickhouse, config).success
    sequential = clickhouse.query_rows("SELECT groupArray(id) FROM api_items")
    clickhouse.command("TRUNCATE TABLE api_items")
    assert run(clickhouse, run_config(secured, concurrency=4, incremental=None)).success
    assert clickhouse.query_rows("SELECT groupArray(id) FROM api_items") == sequential


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"kind": "drop", "times": 100}, "connection failed after 3 attempt(s)"),
        ({"kind": "503", "times": 100}, "HTTP 503 Service Unavailable after 3 attempt(s)"),
        ({"kind": "malformed", "times": 100}, "is not JSON"),
        ({"kind": "html", "times": 100}, "502 Bad Gateway"),
        ({"kind": "timeout", "times": 100, "seconds": 0.5}, "request timed out after 3 attempt(s)"),
        ({"kind": "429", "times": 100, "retry_after": "0"}, "HTTP 429 Too Many Requests"),
    ],
)
def test_failure_in_the_middle_of_paging_leaves_the_table_unchanged(
    secured: RunningApi, clickhouse: ClickHouseResource, fault: dict[str, Any], expected: str
) -> None:
    api = secured
    fault = dict(fault)  # the parameter is shared by both backends' runs: do not consume it
    assert run(clickhouse, run_config(api)).success
    before = table_state(clickhouse)
    api.state.records = [*api.state.records, *(make_record(i) for i in range(250, 600))]
    api.state.fault(fault.pop("kind"), path="/pages", when={"page": "3"}, **fault)
    result = run(clickhouse, run_config(api, timeout=0.2))
    assert not result.success
    message = failure_message(result)
    assert "[pipeline http_to_clickhouse]" in message and expected in message
    assert "/pages?" in message and "page=3" in message
    assert table_state(clickhouse) == before


def landed(clickhouse: ClickHouseResource) -> list[tuple[Any, ...]]:
    return clickhouse.query_rows("SELECT id, name, price, updated_at FROM api_items ORDER BY id")


def expected(ids: range) -> list[tuple[Any, ...]]:
    records = [make_record(i - 1) for i in ids]
    return [(r["id"], r["name"], r["price"], r["updated_at"]) for r in records]


def test_a_500_html_page_and_a_cut_body_once_are_retried_by_the_job(
    secured: RunningApi, clickhouse: ClickHouseResource
) -> None:
    api = secured
    api.state.fault("html", path="/pages", when={"page": "2"})
    api.state.fault("malformed", path="/pages", when={"page": "3"})
    result = run(clickhouse, run_config(api, incremental=None))
    assert result.success, failure_message(result)
    assert landed(clickhouse) == expected(range(1, 251))
    pages = sorted(p["page"] for p in api.state.requests_to("/pages"))
    assert pages == ["1", "2", "2", "3", "3"]  # pages 2 and 3 in parallel, each sent twice


def test_retried_statuses_come_from_run_config(
    secured: RunningApi, clickhouse: ClickHouseResource
) -> None:
    api = secured
    only_503 = {"max_attempts": 3, "backoff": 0.01, "statuses": [503]}
    api.state.fault("500", path="/pages", when={"page": "2"})
    refused = run(clickhouse, run_config(api, incremental=None, retry=only_503))
    message = failure_message(refused)
    assert """HTTP 500 Internal Server Error: '{"error": "injected 500"}'""" in message
    assert f"[GET {api.url}/pages?page=2&per_page=100" in message
    assert clickhouse.query_rows("EXISTS TABLE api_items") == [(0,)]

    api.state.fault("503", path="/pages", when={"page": "2"})
    api.state.fault("500", path="/pages", when={"page": "3"})
    with_500 = {**only_503, "statuses": [500, 503]}
    result = run(clickhouse, run_config(api, incremental=None, retry=with_500))
    assert result.success, failure_message(result)
    assert landed(clickhouse) == expected(range(1, 251))


def test_the_failed_url_keeps_its_brackets_in_the_run_failure(
    api: RunningApi, clickhouse: ClickHouseResource
) -> None:
    api.state.fault("html", path="/pages", when={"page": "3"}, times=100)
    result = run(clickhouse, run_config(api, auth={}, incremental=None))
    message = failure_message(result)
    assert f"[GET {api.url}/pages?page=3&per_page=100] HTTP 500" in message


def test_a_4xx_in_run_config_retry_statuses_fails_before_any_request(
    secured: RunningApi, clickhouse: ClickHouseResource
) -> None:
    api = secured
    result = run(clickhouse, run_config(api, retry={"statuses": [503, 404]}))
    message = failure_message(result)
    assert "retry statuses" in message and "404" in message
    assert "408, 425, 429" in message
    assert api.state.log == []
    assert clickhouse.query_rows("EXISTS TABLE api_items") == [(0,)]


def test_mixed_types_across_pages_leave_the_table_untouched(
    secured: RunningApi, clickhouse: ClickHouseResource
) -> None:
    api = secured
    api.state.records = [
        dict(r, price=str(r["price"])) if i >= 200 else r for i, r in enumerate(api.state.records)
    ]
    result = run(clickhouse, run_config(api))
    assert not result.success
    message = failure_message(result)
    assert "field 'price' changes type" in message and "page=3" in message
    assert clickhouse.query_rows("EXISTS TABLE api_items") == [(0,)]


def test_a_record_path_that_does_not_exist_leaves_the_table_untouched(
    secured: RunningApi, clickhouse: ClickHouseResource
) -> None:
    result = run(clickhouse, run_config(secured, records_path="data.rows"))
    message = failure_message(result)
    assert "record path 'data.rows' does not exist" in message and "page=1" in message
    assert clickhouse.query_rows("EXISTS TABLE api_items") == [(0,)]


def test_records_that_are_not_objects_leave_the_table_untouched(
    api: RunningApi, clickhouse: ClickHouseResource
) -> None:
    api.state.raw_body = {"items": [{"id": 1}, "two", 3]}
    config = run_config(api, url=api.url + "/raw", paginator={"style": "single"}, auth={})
    config["ops"][EXTRACT]["config"]["records_path"] = None
    result = run(clickhouse, config)
    assert not result.success
    assert "record 1 is a JSON string, not an object" in failure_message(result)
    assert clickhouse.query_rows("EXISTS TABLE api_items") == [(0,)]


def test_the_secret_never_appears_in_events_or_config(
    secured: RunningApi, clickhouse: ClickHouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(clickhouse, run_config(secured))
    assert result.success
    text = "\n".join(str(event) for event in result.all_events)
    assert TOKEN not in text and TOKEN not in str(result.dagster_run.run_config)
    # A wrong secret: the failure names the variable to check, never the value.
    before = table_state(clickhouse)
    monkeypatch.setenv("ITEMS_API_TOKEN", "wrong-" + TOKEN)
    failed = run(clickhouse, run_config(secured))
    assert table_state(clickhouse) == before
    message = failure_message(failed)
    assert "HTTP 401" in message and "$ITEMS_API_TOKEN" in message
    assert TOKEN not in "\n".join(str(event) for event in failed.all_events)


def test_generic_job_through_dagster_job_execute(
    secured: RunningApi, clickhouse: ClickHouseResource, data_dir: Path, tmp_path: Path
) -> None:
    config_file = tmp_path / "http.yaml"
    config_file.write_text(yaml.safe_dump(run_config(secured)))
    command = job_execute_command("http_to_clickhouse", config_file)
    done = run_dagster(command, data_dir, tmp_path / "dagster_home")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stdout + done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert clickhouse.query_rows("SELECT count(), max(id) FROM api_items") == [(250, 250)]


def test_launchpad_config_is_validated_with_defaults_filled_in(api: RunningApi) -> None:
    minimal = {
        "ops": {
            EXTRACT: {"config": {"url": api.url + "/single"}},
            LOAD: {"config": {"table": "api_items"}},
        }
    }
    resolved = validate_run_config(JOB, minimal)
    extract = resolved["ops"][EXTRACT]["config"]
    assert extract["concurrency"] == 4 and extract["records_path"] is None
    assert extract["max_depth"] == 3 and extract["incremental"] is None
    with pytest.raises(DagsterInvalidConfigError, match="url"):
        validate_run_config(JOB, {"ops": {EXTRACT: {"config": {}}, LOAD: minimal["ops"][LOAD]}})


def test_incremental_cursor_missing_from_the_table_is_a_config_error(
    secured: RunningApi, clickhouse: ClickHouseResource
) -> None:
    assert run(clickhouse, run_config(secured, incremental=None)).success
    config = run_config(
        secured, incremental={"cursor_field": "modified", "param": "since", "key": ["id"]}
    )
    result = run(clickhouse, config)
    message = failure_message(result)
    assert "target table default.api_items has no column 'modified'" in message
    assert "it has: active, id," in message
    assert clickhouse.query_rows("SELECT count() FROM api_items") == [(250,)]


def test_python_pipeline_reads_the_bound_from_its_loader_target(
    api: RunningApi, clickhouse: ClickHouseResource
) -> None:
    pipeline = create_etl_pipeline(
        "orders_sync",
        extractor=create_http_extractor(
            api.url + "/offset",
            paginator=offset(total_path="total", page_size=50),
            incremental=Incremental(cursor_field="updated_at", param="updated_since", key=("id",)),
        ),
        loader=create_clickhouse_loader("orders", mode="append", order_by=["id"]),
    )
    assert pipeline.execute_in_process(resources={"clickhouse": clickhouse}).success
    api.state.records = [*api.state.records, *(make_record(i) for i in range(250, 260))]
    assert pipeline.execute_in_process(resources={"clickhouse": clickhouse}).success
    assert api.state.requests_to("/offset")[-1]["updated_since"] == "2024-01-01T04:09:00Z"
    assert clickhouse.query_rows("SELECT count(), uniqExact(id), max(id) FROM orders") == [
        (260, 260, 260)
    ]
