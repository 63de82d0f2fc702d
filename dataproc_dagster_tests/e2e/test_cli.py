"""The operations commands as CI and cron would call them: ``dagster definitions validate``,
``dagster job execute -m dataproc_dagster -j JOB -c config.yaml`` and the integrity check."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dataproc_dagster_tests.e2e.stack import DAGSTER_YAML, venv_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUN_CONFIG = "loggers:\n  console:\n    config:\n      log_level: INFO\n"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DAGSTER_", "CLICKHOUSE_", "METABASE_", "MIGRATIONS_"))
    }
    return {
        **base,
        "DAGSTER_HOME": str(home),
        "DATAPROC_DATA_DIR": str(tmp_path / "data"),
        "DATAPROC_LOG_DIR": str(tmp_path / "logs"),
    }


def dagster(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_tool("dagster"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_code_location_validates(env: dict[str, str], tmp_path: Path) -> None:
    result = dagster(env, tmp_path, "definitions", "validate", "-m", "dataproc_dagster")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Validation successful for code location dataproc_dagster" in output


def test_integrity_check_job_through_dagster_job_execute(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(RUN_CONFIG)
    job = ("job", "execute", "-m", "dataproc_dagster")

    fresh = dagster(env, tmp_path, *job, "-j", "integrity_check", "-c", str(config))
    output = fresh.stdout + fresh.stderr
    assert fresh.returncode != 0, output[-3000:]
    assert "[FAILED ] migrations_up_to_date: pending: 0001_create_penguins.up.sql" in output
    assert "integrity check failed: migrations_up_to_date" in output

    for name in ("migrate", "penguins"):
        step = dagster(env, tmp_path, *job, "-j", name, "-c", str(config))
        assert step.returncode == 0, (step.stdout + step.stderr)[-3000:]

    ready = dagster(env, tmp_path, *job, "-j", "integrity_check", "-c", str(config))
    output = ready.stdout + ready.stderr
    assert ready.returncode == 0, output[-3000:]
    assert "[PASSED ] migrations_up_to_date: 1 migration(s) applied" in output
    assert "[PASSED ] target_table default.penguins: default.penguins present" in output
    assert "[SKIPPED] metabase_reachable" in output
    # The log files named in dagster.yaml hold the same lines.
    log = (tmp_path / "logs" / "jobs" / "integrity_check.log").read_text()
    assert "[PASSED ] clickhouse_reachable: embedded chDB" in log
