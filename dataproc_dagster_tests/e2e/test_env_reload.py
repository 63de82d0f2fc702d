"""End to end: an edited ``.env`` holds after a code-location reload of a running ``dagster dev``.

``python -m dataproc_dagster.cli dev`` (what ``./run.sh dev`` runs) in a folder with a ``.env``
holding a wrong API token; the token is corrected, the location reloaded through GraphQL (the
UI's Reload button), and a run launched as the launchpad does succeeds; the token is then
removed from ``.env``, reloaded again, and the next run fails naming the missing variable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataproc_dagster_tests.e2e.stack import LOCATION, DagsterStack, launch_and_wait
from dataproc_dagster_tests.servers.http_api import ApiState, RunningApi, serve_api

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

TOKEN = "reload-token-0c4"
VARIABLE = "RELOAD_API_TOKEN"
RELOAD = """
mutation ($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) { __typename }
}
"""
RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } }
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message }
        ... on ExecutionStepFailureEvent { error { message } }
      }
    }
  }
}
"""


class DevStack(DagsterStack):
    """``dagster dev`` through the project's wrapper, in a folder with its own ``.env``."""

    def start(self, timeout: float = 240.0) -> None:
        """Start ``python -m dataproc_dagster.cli dev`` and wait for the location and daemon."""
        self.prepare()
        deadline = time.monotonic() + timeout
        argv = [sys.executable, "-m", "dataproc_dagster.cli", "dev", "-m", LOCATION]
        self._spawn("dev", [*argv, "-h", "127.0.0.1", "-p", str(self.port)])
        self._wait(deadline, self._location_loaded, "code location loaded")
        self._wait(deadline, self._daemons_healthy, "daemons healthy")

    def reload(self, timeout: float = 180.0) -> None:
        """Reload the code location as the UI's Reload button does; wait until it is loaded."""
        done = self.graphql(RELOAD, {"name": LOCATION})["reloadRepositoryLocation"]
        assert done["__typename"] == "WorkspaceLocationEntry", done
        self._wait(time.monotonic() + timeout, self._location_loaded, "code location reloaded")


@pytest.fixture(scope="module")
def api() -> Iterator[RunningApi]:
    with serve_api(ApiState(auth=("bearer", TOKEN))) as running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    running = DevStack(tmp_path_factory.mktemp("dagster_env_reload"))
    running.root.joinpath(".env").write_text(f"{VARIABLE}=wrong-token\n")
    try:
        running.start()
        yield running
    finally:
        running.stop()


def _run(stack: DevStack, api: RunningApi, table: str) -> tuple[str, str]:
    config = {
        "ops": {
            "http_to_clickhouse__extract": {
                "config": {
                    "url": api.url + "/pages",
                    "auth": {"kind": "bearer", "secret_env": VARIABLE},
                    "paginator": {"style": "page_number", "total_pages_path": "meta.total_pages"},
                    "records_path": "data.items",
                }
            },
            "http_to_clickhouse__load": {"config": {"table": table}},
        }
    }
    done = launch_and_wait(stack, "http_to_clickhouse", config, RUN)
    events = done["logsForRun"]["events"]
    messages = "\n".join(e.get("message") or "" for e in events)
    errors = "\n".join((e.get("error") or {}).get("message") or "" for e in events)
    return done["runOrError"]["status"], f"{messages}\n{errors}"


def test_edited_env_file_holds_after_reload(stack: DevStack, api: RunningApi) -> None:
    env_file = stack.root / ".env"
    env_file.write_text(f"{VARIABLE}={TOKEN}\n")  # corrected
    stack.reload()
    status, messages = _run(stack, api, "reload_items")
    assert status == "SUCCESS", f"{messages[-3000:]}\n{stack.procs[0].tail()}"
    assert "250 record(s) received" in messages

    env_file.write_text("# the token was removed\n")
    stack.reload()
    status, messages = _run(stack, api, "reload_items_2")
    assert status == "FAILURE"
    assert f"environment variable {VARIABLE} (the bearer secret) is not set" in messages
    dev_output = Path(stack.procs[0].log_path).read_text()
    assert TOKEN not in messages and TOKEN not in dev_output
    assert "SupersessionWarning" not in dev_output  # `dagster dev` is what ./run.sh dev runs
    assert "BetaWarning" not in dev_output  # Dagster's, raised by its own code: nothing to do
    # Runs launched from the UI set no loggers: the console prints their INFO lines (the
    # instance's python_log_level, LOG_LEVEL unset), not every DEBUG event of every step.
    run_lines = [line for line in dev_output.splitlines() if " - http_to_clickhouse - " in line]
    assert any(" - INFO - " in line and "250 record(s) received" in line for line in run_lines)
    assert any(" - ERROR - " in line for line in run_lines)
    debug = [line for line in run_lines if " - DEBUG - " in line]
    assert not debug, "\n".join(debug[:5])
