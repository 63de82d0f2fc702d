"""End to end: ``dagster-webserver`` + ``dagster-daemon`` on a temporary instance configured by
``deploy/dagster.yaml``; the GraphQL API lists the code location, launches ``penguins`` through
the run queue, the rows land in ClickHouse, and headless Chromium shows the job and the run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

REPOSITORY_QUERY = """
query ($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on Repository {
      jobs { name }
      schedules { name pipelineName cronSchedule executionTimezone }
      assetNodes {
        assetKey { path }
        assetChecksOrError { __typename ... on AssetChecks { checks { name jobNames } } }
      }
    }
    ... on PythonError { message }
  }
}
"""
RUN_STATUS = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status jobName tags { key value } }
  }
}
"""
RUN_STEPS = """
query ($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events { __typename ... on MessageEvent { message level stepKey } }
    }
  }
}
"""
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterStack]:
    running = DagsterStack(tmp_path_factory.mktemp("dagster_e2e"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def penguins_run(stack: DagsterStack) -> dict[str, Any]:
    """Launch ``penguins`` through the queue (the daemon starts it) and wait until it ends."""
    launched = stack.graphql(
        LAUNCH, {"params": {"selector": {**SELECTOR, "jobName": "penguins"}, "runConfigData": {}}}
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    seen = [launched["run"]["status"]]
    started = time.monotonic()
    while time.monotonic() - started < 300:
        run = stack.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]
        if run["status"] != seen[-1]:
            seen.append(run["status"])
        if run["status"] in FINISHED:
            break
        time.sleep(1)
    return {"run_id": run_id, "statuses": seen, "seconds": time.monotonic() - started, **run}


def test_graphql_lists_jobs_schedules_and_asset_checks(stack: DagsterStack) -> None:
    repo = stack.graphql(REPOSITORY_QUERY, {"selector": SELECTOR})["repositoryOrError"]
    assert repo["__typename"] == "Repository", repo
    jobs = {j["name"] for j in repo["jobs"]}
    assert {"penguins", "integrity_check"} <= jobs
    schedules = {s["name"]: s for s in repo["schedules"]}
    assert schedules["penguins_schedule"] == {
        "name": "penguins_schedule",
        "pipelineName": "penguins",
        "cronSchedule": "0 6 * * *",
        "executionTimezone": "UTC",
    }
    assert all(s["executionTimezone"] for s in schedules.values())
    checks = {
        "/".join(node["assetKey"]["path"]): sorted(
            c["name"] for c in node["assetChecksOrError"].get("checks", [])
        )
        for node in repo["assetNodes"]
    }
    assert checks["clickhouse/server"] == [
        "clickhouse_reachable",
        "migrations_up_to_date",
        "no_unfinished_loads",
    ]
    assert checks["metabase/server"] == ["metabase_reachable"]
    assert checks["clickhouse/default/penguins"] == [
        "columns_match",
        "freshness_check",
        "rows_loaded",
        "target_table",
    ]
    assert checks["clickhouse/default/penguin_species_stats"] == [
        "columns_match",
        "freshness_check",
        "target_table",
    ]


LINEAGE = """
query ($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    ... on Repository {
      assetNodes {
        assetKey { path }
        dependencyKeys { path }
        groupName
        jobNames
        isExecutable
        kinds
        owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
      }
    }
  }
}
"""


def test_graphql_lineage_runs_from_the_source_through_the_sql_step(stack: DagsterStack) -> None:
    nodes = stack.graphql(LINEAGE, {"selector": SELECTOR})["repositoryOrError"]["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    edges = {
        ("/".join(dep["path"]), key)
        for key, node in by_key.items()
        for dep in node["dependencyKeys"]
    }
    assert ("file/penguins.csv", "clickhouse/default/penguins") in edges
    assert ("clickhouse/default/penguins", "clickhouse/default/penguin_species_stats") in edges
    penguins = by_key["clickhouse/default/penguins"]
    assert penguins["groupName"] == "penguins"
    assert "penguins" in penguins["jobNames"]
    assert penguins["isExecutable"] is True  # Materialize works from the catalog
    assert set(penguins["kinds"]) == {"clickhouse", "pandas"}
    assert penguins["owners"] == [{"team": "data-engineering"}]
    assert by_key["file/penguins.csv"]["isExecutable"] is False


def test_penguins_runs_through_the_queue_and_lands_rows(
    stack: DagsterStack, penguins_run: dict[str, Any]
) -> None:
    assert penguins_run["status"] == "SUCCESS", (
        f"run ended {penguins_run['status']} via {penguins_run['statuses']}\n"
        + stack.procs[-1].tail()
    )
    # The run went through the queued run coordinator, which the daemon dequeued.
    assert penguins_run["statuses"][0] in ("QUEUED", "NOT_STARTED")
    tags = {t["key"]: t["value"] for t in penguins_run["tags"]}
    assert tags["dataproc/pipeline"] == "penguins"
    print(f"penguins via webserver + daemon: {penguins_run['seconds']:.1f} s")

    # The framework's step messages reached the run's event log.
    events = stack.graphql(RUN_STEPS, {"runId": penguins_run["run_id"]})["logsForRun"]["events"]
    messages = [e.get("message", "") for e in events]
    assert any("penguins__load" in m and "rows" in m for m in messages), messages[-20:]

    # The run worker has exited, so this process may open the embedded ClickHouse now.
    clickhouse = ClickHouseResource(url=f"chdb://{stack.data_dir / 'clickhouse'}", lock_timeout=60)
    assert clickhouse.query_rows("SELECT count() FROM default.penguins")[0][0] == 342
    stats = clickhouse.query_rows(
        "SELECT species, birds FROM default.penguin_species_stats ORDER BY species"
    )
    assert stats == [("Adelie", 151), ("Chinstrap", 68), ("Gentoo", 123)]

    # The log files configured in dagster.yaml were written.
    job_log = (stack.log_dir / "jobs" / "penguins.log").read_text()
    assert "STEP_SUCCESS" in job_log and "penguins__load" in job_log


def browse_for(text: str, browser: str, url: str, profile: Path, **kwargs: Any) -> str:
    """``browse``, again with more time while the page has not rendered ``text`` (the asset
    graph pages load their data after the shell)."""
    dom = ""
    for attempt, wait_ms in enumerate((20_000, 45_000, 90_000)):
        dom = browse(
            browser, url, profile.with_name(f"{profile.name}_{attempt}"), wait_ms=wait_ms, **kwargs
        )
        if text in dom:
            break
    return dom


def test_ui_shows_the_job_and_the_successful_run(
    stack: DagsterStack, penguins_run: dict[str, Any], tmp_path: Path
) -> None:
    browser = find_browser()
    if browser is None:
        pytest.skip(
            "no chromium: run dataproc_dagster_tests/e2e/ensure_browser.sh "
            "(./run.sh test does) or apt-get install chromium"
        )
    assert penguins_run["status"] == "SUCCESS"
    run_id = penguins_run["run_id"]

    job_shot = ARTIFACTS / "job_penguins.png"
    job_dom = browse_for(
        "Materialize all",
        browser,
        f"{stack.url}/locations/{LOCATION}/jobs/penguins",
        tmp_path / "p1",
        screenshot=job_shot,
    )
    assert "penguins" in job_dom
    # The asset job's graph rendered (it draws the nodes in view), not just the page shell.
    assert "Materialize all" in job_dom and "Asset checks" in job_dom

    run_shot = ARTIFACTS / "run_penguins.png"
    run_dom = browse(browser, f"{stack.url}/runs/{run_id}", tmp_path / "p2", screenshot=run_shot)
    assert run_id[:8] in run_dom
    assert "penguins" in run_dom
    assert "Success" in run_dom
    lineage_shot = ARTIFACTS / "lineage.png"
    lineage_dom = browse_for(
        "penguin_species_stats",
        browser,
        f"{stack.url}/locations/{LOCATION}/asset-groups/penguins/lineage",
        tmp_path / "p3",
        screenshot=lineage_shot,
    )
    assert "penguin_species_stats" in lineage_dom and "penguins.csv" in lineage_dom

    checks_shot = ARTIFACTS / "asset_penguins_checks.png"
    checks_dom = browse_for(
        "columns_match",
        browser,
        f"{stack.url}/assets/clickhouse/default/penguins?view=checks",
        tmp_path / "p4",
        screenshot=checks_shot,
    )
    assert "rows_loaded" in checks_dom and "columns_match" in checks_dom
    # Evaluated in the run; only the integrity job's target_table waits for its own run.
    assert checks_dom.count("Not Evaluated") <= 1
    for shot in (job_shot, run_shot, lineage_shot, checks_shot):
        assert shot.stat().st_size > 20_000, f"{shot} looks empty"


CHECK_STATUS = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetChecksOrError {
        ... on AssetChecks { checks { name blocking executionForLatestMaterialization { status } } }
      }
    }
  }
}
"""


def test_checks_are_evaluated_with_every_load(
    stack: DagsterStack, penguins_run: dict[str, Any]
) -> None:
    assert penguins_run["status"] == "SUCCESS"
    node = stack.graphql(CHECK_STATUS, {"key": {"path": ["clickhouse", "default", "penguins"]}})
    checks = {c["name"]: c for c in node["assetNodeOrError"]["assetChecksOrError"]["checks"]}
    for name in ("rows_loaded", "columns_match", "freshness_check"):
        execution = checks[name]["executionForLatestMaterialization"]
        assert execution is not None and execution["status"] == "SUCCEEDED", (name, execution)
    assert checks["columns_match"]["blocking"] is True


POOL = """
query ($key: String!) {
  instance {
    concurrencyLimit(concurrencyKey: $key) { limit slotCount usingDefaultLimit activeSlotCount }
  }
}
"""
RUN_TIMES = """
query ($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status startTime endTime } }
}
"""


def test_instance_limits_from_dagster_yaml(
    stack: DagsterStack, penguins_run: dict[str, Any]
) -> None:
    """One run per pipeline at a time (run queue), one slot in the ``clickhouse`` pool."""
    assert penguins_run["status"] == "SUCCESS"
    pool = stack.graphql(POOL, {"key": "clickhouse"})["instance"]["concurrencyLimit"]
    assert pool["limit"] == 1 and pool["usingDefaultLimit"] is True
    assert pool["activeSlotCount"] == 0  # the finished run released its slot

    params = {"selector": {**SELECTOR, "jobName": "penguins"}, "runConfigData": {}}
    run_ids = [
        stack.graphql(LAUNCH, {"params": params})["launchRun"]["run"]["runId"] for _ in range(2)
    ]
    times: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    while time.monotonic() - started < 300:
        times = {r: stack.graphql(RUN_TIMES, {"runId": r})["runOrError"] for r in run_ids}
        if all(t["status"] in FINISHED for t in times.values()):
            break
        time.sleep(1)
    first, second = (times[r] for r in run_ids)
    assert first["status"] == second["status"] == "SUCCESS", times
    # The second run was held in the queue until the first had ended.
    assert second["startTime"] >= first["endTime"], times


JOB_RUNS = """
query ($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) { ... on Pipeline { runs { runId status } } }
}
"""


def test_a_command_line_run_appears_on_the_job_page(
    stack: DagsterStack, penguins_run: dict[str, Any]
) -> None:
    """The job's Runs tab lists runs by job name and repository label; ``dagster job execute``
    runs get that label too (what CI does, against the same instance)."""
    import subprocess

    from dataproc_dagster_tests.helpers.cli import REPO, job_execute_command

    assert penguins_run["status"] == "SUCCESS"
    selector = {**SELECTOR, "pipelineName": "penguins"}
    before = {
        r["runId"]
        for r in stack.graphql(JOB_RUNS, {"selector": selector})["pipelineOrError"]["runs"]
    }
    assert penguins_run["run_id"] in before
    done = subprocess.run(
        job_execute_command("penguins"),
        cwd=REPO,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = stack.graphql(JOB_RUNS, {"selector": selector})["pipelineOrError"]["runs"]
    new = [r for r in runs if r["runId"] not in before]
    assert [r["status"] for r in new] == ["SUCCESS"]
