"""End to end: the generic ``http_to_clickhouse`` job launched the way the launchpad does it
(GraphQL ``launchRun`` with run config only) on webserver + daemon, against the test API; the
rows land, and the secret appears nowhere in the run's config or event log."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.e2e.stack import (
    ARTIFACTS,
    LAUNCH,
    LOCATION,
    SELECTOR,
    DagsterStack,
    browse,
    find_browser,
    launch_and_wait,
)
from dataproc_dagster_tests.servers.http_api import ApiState, RunningApi, serve_api

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

TOKEN = "e2e-launchpad-token-5d1"
RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status runConfigYaml } }
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events { __typename ... on MessageEvent { message stepKey } } }
  }
}
"""


@pytest.fixture(scope="module")
def api() -> Iterator[RunningApi]:
    with serve_api(ApiState(auth=("bearer", TOKEN))) as running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, api: RunningApi) -> Iterator[DagsterStack]:
    # The code location and its run workers read the secret from their environment.
    os.environ["LAUNCHPAD_API_TOKEN"] = TOKEN
    running = DagsterStack(tmp_path_factory.mktemp("dagster_http_e2e"))
    try:
        running.start()
        yield running
    finally:
        running.stop()
        os.environ.pop("LAUNCHPAD_API_TOKEN", None)


def test_generic_job_from_run_config_only(stack: DagsterStack, api: RunningApi) -> None:
    run_config = {
        "ops": {
            "http_to_clickhouse__extract": {
                "config": {
                    "url": api.url + "/cursor",
                    "auth": {"kind": "bearer", "secret_env": "LAUNCHPAD_API_TOKEN"},
                    "paginator": {"style": "cursor", "cursor_path": "next_cursor"},
                    "records_path": "results",
                }
            },
            "http_to_clickhouse__load": {"config": {"table": "launchpad_items"}},
        }
    }
    done = launch_and_wait(stack, "http_to_clickhouse", run_config, RUN)
    assert done["runOrError"]["status"] == "SUCCESS", stack.procs[-1].tail()
    messages = "\n".join(e.get("message", "") for e in done["logsForRun"]["events"])
    assert "3 page(s), 250 record(s) received" in messages
    assert TOKEN not in messages and TOKEN not in done["runOrError"]["runConfigYaml"]
    assert "LAUNCHPAD_API_TOKEN" in done["runOrError"]["runConfigYaml"]
    clickhouse = ClickHouseResource(url=f"chdb://{stack.data_dir / 'clickhouse'}", lock_timeout=60)
    assert clickhouse.query_rows("SELECT count(), max(id) FROM launchpad_items") == [(250, 250)]


def test_invalid_run_config_is_refused_naming_the_field(stack: DagsterStack) -> None:
    params = {
        "selector": {**SELECTOR, "jobName": "http_to_clickhouse"},
        "runConfigData": {"ops": {"http_to_clickhouse__extract": {"config": {}}}},
    }
    launched = stack.graphql(LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "RunConfigValidationInvalid"
    errors = " ".join(e["message"] for e in launched["errors"])
    assert '"url"' in errors and "http_to_clickhouse__load" in errors


def test_launchpad_page_renders(stack: DagsterStack, tmp_path: Path) -> None:
    browser = find_browser()
    if browser is None:
        pytest.skip("no chromium: run dataproc_dagster_tests/e2e/ensure_browser.sh")
    shot = ARTIFACTS / "launchpad_http_to_clickhouse.png"
    dom = browse(
        browser,
        f"{stack.url}/locations/{LOCATION}/jobs/http_to_clickhouse/playground",
        tmp_path / "profile",
        screenshot=shot,
    )
    # The config editor scaffolds both steps' options; the launchpad names what is missing.
    assert "http_to_clickhouse__extract" in dom and "max_total_wait" in dom
    assert 'Missing required config entry "url"' in dom
    assert "Launch Run" in dom
