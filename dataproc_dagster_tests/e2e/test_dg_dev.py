"""`dg dev` serves the project (webserver, daemon, code server) from its ``[tool.dg]`` settings."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.e2e.stack import REPO, DagsterStack, launch_and_wait, venv_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUN_STATUS = """
query ($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status jobName } }
}
"""


class DgDevStack(DagsterStack):
    """One `dg dev` process instead of a separate webserver and daemon."""

    def start(self, timeout: float = 240.0) -> None:
        """Start `dg dev` and wait until the code location is loaded and the daemons are up."""
        self.prepare()
        deadline = time.monotonic() + timeout
        # --target-path: dg finds the project there and runs Dagster from the repository root.
        argv = [venv_tool("dg"), "dev", "--target-path", str(REPO)]
        self._spawn("dg_dev", [*argv, "-h", "127.0.0.1", "-p", str(self.port)])
        self._wait(deadline, self._location_loaded, "code location loaded")
        self._wait(deadline, self._daemons_healthy, "daemons healthy")


@pytest.fixture(scope="module")
def dg_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DgDevStack]:
    running = DgDevStack(tmp_path_factory.mktemp("dg_dev"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_dg_dev_runs_penguins_through_the_queue(dg_stack: DgDevStack) -> None:
    # The location keeps the name `dagster dev` gives it (code_location_name in [tool.dg]), so
    # the launch selector, schedules and run history are the same under both commands.
    done = launch_and_wait(dg_stack, "penguins", {}, RUN_STATUS)

    assert done["runOrError"]["status"] == "SUCCESS", dg_stack.procs[-1].tail()
    engine = ClickHouseResource(url=f"chdb://{dg_stack.data_dir / 'clickhouse'}")
    assert engine.query_rows("SELECT count() FROM penguins") == [(342,)]
    assert engine.query_rows("SELECT count() FROM penguin_species_stats") == [(3,)]
