"""The code location loads: every job resolves, `definitions validate` passes, no engine opens."""

from __future__ import annotations

from pathlib import Path

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
    assert not (data_dir / "clickhouse").exists()  # building definitions opened no engine


def test_dagster_definitions_validate_passes_without_opening_the_engine(tmp_path: Path) -> None:
    command = [dagster_executable(), "definitions", "validate", "-m", "dataproc_dagster"]
    done = run_dagster(command, tmp_path / "data", tmp_path / "home")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Validation successful" in done.stdout + done.stderr
    assert not (tmp_path / "data" / "clickhouse").exists()
