"""End to end: ``metabase_to_clickhouse`` and ``metabase_catalog`` launched the way the launchpad
does it (GraphQL ``launchRun`` with run config only) on webserver + daemon, against the stand-in
Metabase; rows land, and the API key appears nowhere in the run's config or event log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.e2e.stack import (
    ARTIFACTS,
    LOCATION,
    DagsterStack,
    browse,
    find_browser,
    launch_and_wait,
)
from dataproc_dagster_tests.servers.metabase_fixtures import (
    ORDERS_ROWS,
    StandinSetup,
    build_standin,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status runConfigYaml } }
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message stepKey }
        ... on ExecutionStepFailureEvent { error { message } }
      }
    }
  }
}
"""


@dataclass
class MetabaseStack(DagsterStack):
    """The deployment, with the Metabase settings in its processes' environment."""

    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(self.extra_env)
        return env


@pytest.fixture(scope="module")
def metabase_server() -> Iterator[StandinSetup]:
    setup = build_standin()
    setup.server.start()
    yield setup
    setup.server.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, metabase_server: StandinSetup
) -> Iterator[MetabaseStack]:
    running = MetabaseStack(
        tmp_path_factory.mktemp("dagster_metabase_e2e"),
        extra_env={
            "METABASE_BASE_URL": metabase_server.url,
            "METABASE_API_KEY": metabase_server.server.api_key,
        },
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


def _messages(done: dict[str, Any]) -> str:
    events = done["logsForRun"]["events"]
    lines = [e.get("message", "") for e in events]
    lines += [(e.get("error") or {}).get("message", "") for e in events]
    return "\n".join(lines)


def test_generic_job_from_run_config_only(
    stack: MetabaseStack, metabase_server: StandinSetup
) -> None:
    run_config = {
        "ops": {
            "metabase_to_clickhouse__extract": {
                "config": {"database_name": "Sales", "schema": "PUBLIC", "table_name": "ORDERS"}
            },
            "metabase_to_clickhouse__load": {"config": {"table": "mb_orders", "mode": "replace"}},
        }
    }
    done = launch_and_wait(stack, "metabase_to_clickhouse", run_config, RUN)
    assert done["runOrError"]["status"] == "SUCCESS", stack.procs[-1].tail()
    messages = _messages(done)
    assert f"Metabase: {ORDERS_ROWS} rows in 1 pages" in messages
    key = metabase_server.server.api_key
    assert key not in messages and key not in done["runOrError"]["runConfigYaml"]
    clickhouse = ClickHouseResource(url=f"chdb://{stack.data_dir / 'clickhouse'}", lock_timeout=60)
    assert clickhouse.query_rows("SELECT count(), max(id) FROM mb_orders") == [
        (ORDERS_ROWS, ORDERS_ROWS)
    ]


def test_catalog_job_from_the_launchpad(stack: MetabaseStack) -> None:
    run_config = {"ops": {"read_metabase_catalog": {"config": {"database_name": "Sales"}}}}
    done = launch_and_wait(stack, "metabase_catalog", run_config, RUN)
    assert done["runOrError"]["status"] == "SUCCESS", stack.procs[-1].tail()
    assert "Metabase database 1 'Sales' (h2): 4 tables" in _messages(done)


def test_failed_query_fails_the_run_with_metabase_error(stack: MetabaseStack) -> None:
    run_config = {
        "ops": {
            "metabase_to_clickhouse__extract": {
                "config": {"database_id": 1, "native_query": "SELECT nope FROM PUBLIC.ORDERS"}
            },
            "metabase_to_clickhouse__load": {"config": {"table": "mb_never"}},
        }
    }
    done = launch_and_wait(stack, "metabase_to_clickhouse", run_config, RUN)
    assert done["runOrError"]["status"] == "FAILURE"
    messages = _messages(done)
    assert "[pipeline metabase_to_clickhouse]" in messages
    assert "no such column: nope" in messages and "SELECT nope FROM PUBLIC.ORDERS" in messages


def test_launchpad_page_renders(
    stack: MetabaseStack, metabase_server: StandinSetup, tmp_path: Path
) -> None:
    browser = find_browser()
    if browser is None:
        pytest.skip("no chromium: run dataproc_dagster_tests/e2e/ensure_browser.sh")
    shot = ARTIFACTS / "launchpad_metabase_to_clickhouse.png"
    dom = browse(
        browser,
        f"{stack.url}/locations/{LOCATION}/jobs/metabase_to_clickhouse/playground",
        tmp_path / "profile",
        screenshot=shot,
    )
    # The editor scaffolds the extract step's defaults and names the missing target table; the
    # resource config it shows holds no API key (read from the environment at run time).
    assert "metabase_to_clickhouse__extract" in dom and "page_size" in dom and "20000" in dom
    assert 'Missing required config entry "table"' in dom
    assert "Launch Run" in dom
    assert metabase_server.server.api_key not in dom
