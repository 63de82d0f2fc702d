"""The code location loads: every job resolves, `definitions validate` passes, no engine opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import validate_run_config

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.definitions import build_definitions
from dataproc_dagster_tests.helpers.cli import dagster_executable, run_dagster


def test_every_job_resolves_with_its_resources(data_dir: Path) -> None:
    defs = build_definitions()
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"penguins", "http_to_clickhouse", "metabase_to_clickhouse", "migrate"} <= jobs
    assert "penguin_islands" in jobs  # the YAML pipeline of component_defs/
    schedules = {s.name: s for s in defs.schedules or []}
    assert schedules["penguins_schedule"].execution_timezone == "UTC"
    assert schedules["penguin_islands_schedule"].cron_schedule == "30 6 * * *"
    # The partitioned sample: one asset partitioned by day (January 2024), no schedule.
    assert "penguins_daily" in jobs
    daily = defs.resolve_job_def("penguins_daily")
    assert daily.partitions_def is not None
    assert daily.partitions_def.get_partition_keys()[0] == "2024-01-01"
    assert len(daily.partitions_def.get_partition_keys()) == 31
    assert not (data_dir / "clickhouse").exists()  # building definitions opened no engine


def test_dagster_definitions_validate_passes_without_opening_the_engine(tmp_path: Path) -> None:
    command = [dagster_executable(), "definitions", "validate", "-m", "dataproc_dagster"]
    done = run_dagster(command, tmp_path / "data", tmp_path / "home")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Validation successful" in done.stdout + done.stderr
    assert not (tmp_path / "data" / "clickhouse").exists()


def test_one_clickhouse_field_overridden_in_run_config(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launchpad's resource config with `lock_timeout` only: valid, and the other fields
    keep their settings (the URL and the database of the deployment, not a class default)."""
    monkeypatch.setenv("CLICKHOUSE_DATABASE", "analytics")
    get_settings.cache_clear()
    job = build_definitions().resolve_job_def("migration_checks")
    run_config = {"resources": {"clickhouse": {"config": {"lock_timeout": 5}}}}
    validate_run_config(job, run_config)  # raised "Missing required config entry url" before

    chosen = ClickHouseResource(lock_timeout=5)
    assert chosen.lock_timeout == 5
    assert chosen.url == f"chdb://{data_dir / 'clickhouse'}"
    assert chosen.database == "analytics"
