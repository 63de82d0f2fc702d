"""Integrity checks against the real embedded ClickHouse and a stand-in Metabase: the library,
the ``python -m dataproc_dagster.cli.integrity`` CLI (``./run.sh check``) and the Dagster
job."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetCheckSeverity, Definitions, ExecuteInProcessResult

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.components.discovery import discover_yaml_pipelines
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.integrity import checks as integrity
from dataproc_dagster.integrity import job as integrity_job
from dataproc_dagster.migrations.runner import ClickHouseMigrationManager
from dataproc_dagster.pipelines.penguins import pipeline as penguins
from dataproc_dagster.sources.metabase.resource import MetabaseResource
from dataproc_dagster_tests.helpers.cli import REPO
from dataproc_dagster_tests.servers.metabase_standin import MetabaseStandin

PROJECT_MIGRATIONS = REPO / "migrations"


@pytest.fixture(autouse=True)
def no_metabase(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("METABASE_BASE_URL", "METABASE_API_KEY", "METABASE_USERNAME", "METABASE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MIGRATIONS_DIR", raising=False)
    get_settings.cache_clear()


@pytest.fixture
def standin() -> Iterator[MetabaseStandin]:
    with MetabaseStandin() as server:
        yield server


def by_name(results: list[integrity.CheckResult]) -> dict[str, integrity.CheckResult]:
    return {r.name: r for r in results}


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # cwd outside the repository so that no developer's .env leaks into the test
    return subprocess.run(
        [sys.executable, "-m", "dataproc_dagster.cli.integrity", *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _engine(clickhouse: ClickHouseResource) -> str:
    return "embedded chDB" if clickhouse.is_embedded else "ClickHouse server"


def test_cli_reports_every_check_and_exit_code(
    clickhouse: ClickHouseResource, tmp_path: Path
) -> None:
    fresh = run_cli(tmp_path)
    assert fresh.returncode == 1, fresh.stdout + fresh.stderr
    out = fresh.stdout
    assert f"[PASSED ] clickhouse_reachable: {_engine(clickhouse)} " in out
    assert (
        "[SKIPPED] metabase_reachable: Metabase is not configured (METABASE_BASE_URL is empty)"
        in out
    )
    assert "[FAILED ] migrations_up_to_date: pending: 0001_create_penguins.up.sql" in out
    assert "fix: apply them with ./run.sh migrate" in out
    assert "[WARNING] pipeline_tables_penguins: not created yet: default.penguins, " in out
    # The YAML pipeline's tables are checked too.
    assert "[WARNING] pipeline_tables_penguin_islands: not created yet: default.penguins_raw" in out
    assert "[PASSED ] no_unfinished_loads: no staging table and no unfinished load" in out
    assert "6 checks: 2 passed, 1 failed, 2 warning(s), 1 skipped" in out

    ClickHouseMigrationManager(clickhouse, folder=PROJECT_MIGRATIONS).apply()
    assert penguins.execute_in_process(resources={"clickhouse": clickhouse}).success
    [islands] = discover_yaml_pipelines()
    assert islands.execute_in_process(resources={"clickhouse": clickhouse}).success

    ready = run_cli(tmp_path, "--json")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    results = {r["name"]: r for r in json.loads(ready.stdout)}
    assert [r["status"] for r in results.values()] == [
        "passed",
        "skipped",
        "passed",
        "passed",
        "passed",
        "passed",
    ]
    server = results["clickhouse_reachable"]["metadata"]
    assert server["engine"] == _engine(clickhouse)
    assert server["database"] == "default"
    assert server["version"].split(".")[0].isdigit()
    assert server["tables"] >= 3  # penguins, penguin_species_stats, the migrations state
    assert results["migrations_up_to_date"]["metadata"]["current_version"] == 1
    tables = results["pipeline_tables_penguins"]["metadata"]
    assert tables["tables"] == ["default.penguins", "default.penguin_species_stats"]
    assert tables["managed_by_migrations"] == ["default.penguins"]
    assert "bill_ratio Nullable(Float64)" in tables["columns"]["default.penguins"]
    assert "birds UInt64" in tables["columns"]["default.penguin_species_stats"]
    islands_tables = results["pipeline_tables_penguin_islands"]["metadata"]["tables"]
    assert islands_tables == ["default.penguins_raw", "default.penguin_island_counts"]


def test_edited_migration_and_changed_table_fail(
    clickhouse: ClickHouseResource, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(PROJECT_MIGRATIONS, folder)
    ClickHouseMigrationManager(clickhouse, folder=folder).apply()
    clickhouse.command("ALTER TABLE default.penguins DROP COLUMN bill_ratio")
    clickhouse.command("ALTER TABLE default.penguins ADD COLUMN colour String")
    up = folder / "0001_create_penguins.up.sql"
    up.write_text(up.read_text() + "\n-- edited after it ran\n")

    results = by_name(
        integrity.run_all_checks(
            clickhouse=clickhouse,
            metabase=MetabaseResource(),
            pipelines=[penguins],
            migrations_folder=folder,
        )
    )
    migrations = results["migrations_up_to_date"]
    assert migrations.failed
    assert migrations.summary == "edited after applying: 0001_create_penguins.up.sql"
    assert "restore edited or missing files from version control" in migrations.fix
    assert migrations.metadata["checksum_mismatches"] == ["0001_create_penguins.up.sql"]
    tables = results["pipeline_tables_penguins"]
    assert tables.failed
    assert "default.penguins: column bill_ratio is missing" in tables.summary
    assert "default.penguins: column colour is not in the migrations" in tables.summary
    assert results["clickhouse_reachable"].status == integrity.PASSED


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_fails_without_the_password() -> None:
    port = free_port()
    resource = ClickHouseResource(
        url=f"http://127.0.0.1:{port}", password="pw-never-shown-42", connect_timeout=2
    )
    result = integrity.check_clickhouse(resource)
    assert result.failed
    assert result.summary.startswith("cannot reach ClickHouse")
    assert "CLICKHOUSE_URL" in result.fix
    assert (
        result.metadata["where"] == f"ClickHouse server http://127.0.0.1:{port} (database default)"
    )
    assert "pw-never-shown-42" not in json.dumps(result.to_dict(), default=str)


def test_metabase_api_key_login_and_refusal(standin: MetabaseStandin) -> None:
    ok = integrity.check_metabase(
        MetabaseResource(base_url=standin.base_url, api_key=standin.api_key)
    )
    assert ok.status == integrity.PASSED, ok.summary
    assert ok.metadata["health"] == "ok"
    assert ok.metadata["auth_method"] == "api-key"
    assert ok.metadata["user"] == standin.username
    assert standin.count("GET", "/api/user/current") == 1

    session = integrity.check_metabase(
        MetabaseResource(
            base_url=standin.base_url, username=standin.username, password=standin.password
        )
    )
    assert session.status == integrity.PASSED, session.summary
    assert session.metadata["auth_method"] == "session"

    refused = integrity.check_metabase(
        MetabaseResource(base_url=standin.base_url, api_key="mb_wrong_key_123")
    )
    assert refused.failed
    assert "API key was refused" in refused.summary
    assert "METABASE_API_KEY" in refused.fix
    assert "mb_wrong_key_123" not in json.dumps(refused.to_dict(), default=str)

    standin.stop()
    down = integrity.check_metabase(
        MetabaseResource(base_url=standin.base_url, api_key=standin.api_key, max_retries=0)
    )
    assert down.failed
    assert "connection failed" in down.summary


def test_metabase_skipped_with_reason_when_not_configured() -> None:
    result = integrity.check_metabase(MetabaseResource())
    assert result.status == integrity.SKIPPED
    assert result.metadata["reason"] == "METABASE_BASE_URL is empty"
    assert not result.failed


def run_job(clickhouse: ClickHouseResource, metabase: MetabaseResource) -> ExecuteInProcessResult:
    defs = Definitions(
        assets=integrity_job.ASSETS,
        asset_checks=integrity_job.ASSET_CHECKS,
        jobs=integrity_job.JOBS,
        resources={"clickhouse": clickhouse, "metabase": metabase},
    )
    return defs.resolve_job_def(integrity_job.JOB_NAME).execute_in_process(raise_on_error=False)


def evaluations(result: ExecuteInProcessResult) -> dict[str, Any]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e
        for e in result.get_asset_check_evaluations()
    }


def test_integrity_job_reports_each_check_and_fails_the_run(
    clickhouse: ClickHouseResource, standin: MetabaseStandin
) -> None:
    metabase = MetabaseResource(base_url=standin.base_url, api_key=standin.api_key)
    fresh = run_job(clickhouse, metabase)
    assert not fresh.success
    failure = fresh.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None
    assert "integrity check failed: migrations_up_to_date" in failure.message
    checks = evaluations(fresh)
    assert sorted(checks) == [
        "clickhouse/default/penguin_island_counts:target_table",
        "clickhouse/default/penguin_species_stats:target_table",
        "clickhouse/default/penguins:target_table",
        "clickhouse/default/penguins_raw:target_table",
        "clickhouse/server:clickhouse_reachable",
        "clickhouse/server:migrations_up_to_date",
        "clickhouse/server:no_unfinished_loads",
        "metabase/server:metabase_reachable",
    ]
    assert checks["clickhouse/server:no_unfinished_loads"].passed
    assert checks["clickhouse/server:clickhouse_reachable"].passed
    assert checks["clickhouse/server:clickhouse_reachable"].metadata["engine"].value == _engine(
        clickhouse
    )
    pending = checks["clickhouse/server:migrations_up_to_date"]
    assert not pending.passed
    assert pending.description == "pending: 0001_create_penguins.up.sql"
    assert pending.metadata["pending_count"].value == 1
    assert checks["metabase/server:metabase_reachable"].passed
    assert checks["metabase/server:metabase_reachable"].metadata["user"].value == standin.username
    table = checks["clickhouse/default/penguins:target_table"]
    assert not table.passed and table.severity == AssetCheckSeverity.WARN
    assert "not created yet" in (table.description or "")

    ClickHouseMigrationManager(clickhouse, folder=PROJECT_MIGRATIONS).apply()
    assert penguins.execute_in_process(resources={"clickhouse": clickhouse}).success
    [islands] = discover_yaml_pipelines()
    assert islands.execute_in_process(resources={"clickhouse": clickhouse}).success
    ready = run_job(clickhouse, MetabaseResource())
    assert ready.success
    checks = evaluations(ready)
    assert all(e.passed for e in checks.values())
    skipped = checks["metabase/server:metabase_reachable"]
    assert skipped.description == (
        "skipped: Metabase is not configured (METABASE_BASE_URL is empty)"
    )
    assert skipped.metadata["status"].value == "skipped"
    penguin_table = checks["clickhouse/default/penguins:target_table"]
    assert penguin_table.description == "default.penguins present with 11 columns"
    assert penguin_table.metadata["managed_by_migrations"].value is True
