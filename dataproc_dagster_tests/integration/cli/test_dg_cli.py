"""The `dg` command line works on the project from the repository root, beside `dagster`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.helpers.cli import REPO, dg_executable, run_dagster

pytestmark = pytest.mark.slow

# The demo's run config: the console logger at INFO (the steps' lines, not every event).
DEMO_CONFIG = REPO / "deploy" / "demo.yaml"
DEMO_CONFIG_JSON = json.dumps({"loggers": {"console": {"config": {"log_level": "INFO"}}}})


def _dg(arguments: list[str], tmp_path: Path) -> tuple[int, str, str]:
    done = run_dagster([dg_executable(), *arguments], tmp_path / "data", tmp_path / "home")
    return done.returncode, done.stdout, done.stderr


def _engine(tmp_path: Path) -> ClickHouseResource:
    return ClickHouseResource(url=f"chdb://{tmp_path / 'data' / 'clickhouse'}")


def _assert_demo_rows_landed(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    assert engine.query_rows("SELECT count() FROM penguins") == [(342,)]
    assert engine.query_rows("SELECT count(), sum(birds) FROM penguin_species_stats") == [(3, 342)]


def test_dg_check_defs_passes(tmp_path: Path) -> None:
    code, out, err = _dg(["check", "yaml"], tmp_path)
    assert code == 0, out + err
    assert "All component YAML validated successfully" in out + err

    code, out, err = _dg(["check", "defs"], tmp_path)

    assert code == 0, err[-3000:]
    assert "All definitions loaded successfully" in out + err
    # Loading the definitions opens no engine.
    assert not (tmp_path / "data" / "clickhouse").exists()


def test_dg_list_defs_json_shows_the_code_location(tmp_path: Path) -> None:
    from dataproc_dagster.definitions import defs

    code, out, err = _dg(["list", "defs", "--json"], tmp_path)

    assert code == 0, err[-3000:]
    listed = json.loads(out)
    jobs = {job["name"] for job in listed["jobs"]}
    schedules = {schedule["name"] for schedule in listed["schedules"]}
    assets = {asset["asset_key"] for asset in listed["assets"]}
    # dg sees what the code location defines (compared with the in-process Definitions, so a
    # new pipeline or asset does not break this test)...
    assert jobs == {job.name for job in defs.jobs or []}
    assert schedules == {schedule.name for schedule in defs.schedules or []}
    # ...which includes the demo job, the operational jobs and their schedules,
    assert {"penguins", "migrate", "migrate_rollback", "migration_checks"} <= jobs
    assert "penguin_islands" in jobs  # the YAML pipeline (dataproc_dagster/component_defs/)
    assert {"integrity_check", "http_to_clickhouse", "metabase_to_clickhouse"} <= jobs
    assert {"penguins_schedule", "migration_checks_hourly", "integrity_check_schedule"} <= schedules
    # the tables the demo writes and the migrated schema (with its checks),
    assert {
        "clickhouse/default/penguins",
        "clickhouse/default/penguin_species_stats",
        "clickhouse/default/penguins_raw",
        "clickhouse/schema",
    } <= assets
    assert any(check["asset_key"] == "clickhouse/schema" for check in listed["asset_checks"])
    # and the resources the steps use.
    assert {"clickhouse", "http", "metabase"} <= {r["name"] for r in listed["resources"]}


def test_dg_launch_job_lands_the_demo_rows_in_the_instance(tmp_path: Path) -> None:
    code, out, err = _dg(["launch", "--job", "penguins"], tmp_path)

    assert code == 0, err[-3000:]
    assert "STEP_SUCCESS" in out + err  # no run config: every event on the console
    _assert_demo_rows_landed(tmp_path)
    with DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        runs = instance.get_runs()
        assert [(r.job_name, r.status) for r in runs] == [("penguins", DagsterRunStatus.SUCCESS)]


@pytest.mark.parametrize(
    "config", [["--config-json", DEMO_CONFIG_JSON], ["-c", str(DEMO_CONFIG)]], ids=["json", "file"]
)
def test_dg_launch_job_with_run_config(tmp_path: Path, config: list[str]) -> None:
    code, out, err = _dg(["launch", "--job", "penguins", *config], tmp_path)

    assert code == 0, err[-3000:]
    # The run config reached the run: the console logger shows INFO lines only.
    assert "STEP_SUCCESS" not in out + err
    assert "penguins__load" in out + err
    _assert_demo_rows_landed(tmp_path)


def test_dg_launch_with_invalid_run_config_fails_before_writing(tmp_path: Path) -> None:
    bad = json.dumps({"ops": {"no_such_step": {"config": {}}}})

    code, out, err = _dg(["launch", "--job", "penguins", "--config-json", bad], tmp_path)

    assert code != 0
    assert "no_such_step" in out + err
    assert not (tmp_path / "data" / "clickhouse").exists()


def test_dg_launch_assets_materializes_the_schema(tmp_path: Path) -> None:
    code, _, err = _dg(["launch", "--assets", "clickhouse/schema"], tmp_path)

    assert code == 0, err[-3000:]
    engine = _engine(tmp_path)
    # The migration created the (empty) table with the types it declares.
    species = engine.query_rows(
        "SELECT type FROM system.columns "
        "WHERE database = 'default' AND table = 'penguins' AND name = 'species'"
    )
    assert species == [("LowCardinality(String)",)]
    assert engine.query_rows("SELECT count() FROM penguins") == [(0,)]
    with DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        key = AssetKey(["clickhouse", "schema"])
        assert instance.get_latest_materialization_event(key) is not None
