"""End to end: a backfill of the partitioned sample ``penguins_daily`` launched as the UI's
*Materialize → Launch backfill* does (its GraphQL mutation), run by the daemon; the asset's
partition status in the API and on its *Partitions* page in headless Chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.e2e.stack import ARTIFACTS, DagsterStack, browse, find_browser

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

KEY = ["clickhouse", "default", "penguin_observations"]
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]
# The mutation of the asset page's "Launch backfill" button.
LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
    ... on UnauthorizedError { message }
  }
}
"""
BACKFILL = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numPartitions runs(limit: 10) { runId status } }
  }
}
"""
PARTITION_STATS = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      partitionKeys
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    }
  }
}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterStack]:
    running = DagsterStack(tmp_path_factory.mktemp("dagster_partitions_e2e"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


def run_backfill(stack: DagsterStack) -> dict[str, Any]:
    params = {"assetSelection": [{"path": KEY}], "partitionNames": DAYS, "fromFailure": False}
    launched = stack.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = stack.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        if state["status"] not in ("REQUESTED",) and all(
            r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in state["runs"]
        ):
            return dict(state)
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} did not finish:\n{stack.procs[-1].tail()}")


def test_backfill_from_the_ui_shows_partition_status(stack: DagsterStack, tmp_path: Path) -> None:
    state = run_backfill(stack)
    assert state["status"].startswith("COMPLETED"), state
    # single_run backfill policy: the three days in one run.
    assert [r["status"] for r in state["runs"]] == ["SUCCESS"], state

    node = stack.graphql(PARTITION_STATS, {"key": {"path": KEY}})["assetNodeOrError"]
    assert len(node["partitionKeys"]) == 31
    stats = node["partitionStats"]
    assert stats["numMaterialized"] == 3 and stats["numPartitions"] == 31, stats
    assert stats["numFailed"] == 0

    # The run worker has exited: this process may open the embedded ClickHouse.
    clickhouse = ClickHouseResource(url=f"chdb://{stack.data_dir / 'clickhouse'}", lock_timeout=60)
    days = clickhouse.query_rows(
        "SELECT toString(observed_on) FROM default.penguin_observations GROUP BY 1 ORDER BY 1"
    )
    assert [d for (d,) in days] == DAYS

    browser = find_browser()
    if browser is None:
        pytest.skip("no chromium: run dataproc_dagster_tests/e2e/ensure_browser.sh")
    shot = ARTIFACTS / "asset_penguin_observations_partitions.png"
    url = f"{stack.url}/assets/{'/'.join(KEY)}?view=partitions"
    dom = ""
    for attempt, wait_ms in enumerate((20_000, 45_000, 90_000)):
        dom = browse(browser, url, tmp_path / f"p{attempt}", screenshot=shot, wait_ms=wait_ms)
        if "2024-01-31" in dom:
            break
    (ARTIFACTS / "asset_penguin_observations_partitions.html").write_text(dom)
    assert "penguin_observations" in dom
    assert "2024-01-31" in dom and "2024-01-01" in dom  # the partition list rendered
    # The status filter of the Partitions tab counts the backfilled days and the missing ones.
    assert "Materialized (3)" in dom and "Missing (28)" in dom and "Failed (0)" in dom
    assert shot.stat().st_size > 20_000, f"{shot} looks empty"
