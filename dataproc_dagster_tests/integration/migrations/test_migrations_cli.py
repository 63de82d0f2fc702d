"""The migrations CLI and ``dagster job execute`` as subprocesses, on one chDB directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource

CLI = [sys.executable, "-m", "dataproc_dagster.cli.migrations"]


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    migrations = tmp_path / "migrations"
    write(
        migrations,
        "0001_create_events.up.sql",
        "CREATE TABLE {database}.events {cluster} (id UInt32) ENGINE = MergeTree ORDER BY id;",
    )
    write(migrations, "0001_create_events.down.sql", "DROP TABLE {database}.events SYNC;")
    # Slow on purpose, so that two concurrent runs overlap; the insert shows a double apply.
    write(
        migrations,
        "0002_seed_events.up.sql",
        "SELECT sleep(2);\nINSERT INTO {database}.events VALUES (1), (2), (3);",
    )
    return migrations


@pytest.fixture
def env(
    tmp_path: Path, data_dir: Path, folder: Path, clickhouse: ClickHouseResource
) -> dict[str, str]:
    # CLICKHOUSE_URL passes through: unset on the embedded backend, the local server otherwise.
    environment = dict(os.environ)
    environment.update(
        DATAPROC_DATA_DIR=str(data_dir),
        MIGRATIONS_DIR=str(folder),
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
        MIGRATIONS_LOCK_TIMEOUT="60",
    )
    (tmp_path / "dagster_home").mkdir()
    return environment


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_two_concurrent_up_runs_apply_each_migration_once(
    env: dict[str, str], tmp_path: Path, clickhouse: ClickHouseResource
) -> None:
    runs = [
        subprocess.Popen(
            [*CLI, "up"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outputs
    printed = sorted(out for out, _ in outputs)
    assert printed[0].startswith("applied: 0001_create_events, 0002_seed_events")
    assert printed[1].startswith("applied: nothing (no migration pending)\n")
    # The state line counts the database's migrations, not this command's.
    assert "in the database: 2 applied, 0 pending, 0 failed" in printed[1]
    assert "executed" not in printed[1]
    assert sum("no pending migration" in err for _, err in outputs) == 1
    assert clickhouse.query_rows("SELECT count() FROM events") == [(3,)]
    applied = clickhouse.query_rows(
        "SELECT version, count() FROM schema_migrations "
        "WHERE kind = 'migration' AND status = 'applied' GROUP BY version ORDER BY version"
    )
    assert applied == [(1, 1), (2, 1)]


# The command line's output does not depend on the backend (the runner tests cover both).
@pytest.mark.backends("embedded")
def test_cli_commands_exit_codes_and_output(
    env: dict[str, str], tmp_path: Path, folder: Path
) -> None:
    status = cli(env, tmp_path, "status", "--check")
    assert status.returncode == 3
    assert "in the database: 0 applied, 2 pending, 0 failed" in status.stdout

    dry = cli(env, tmp_path, "up", "--dry-run")
    assert dry.returncode == 0
    assert (
        "-- 0002_seed_events, statement 2\nINSERT INTO `default`.events VALUES (1), (2), (3);"
        in dry.stdout
    )

    assert cli(env, tmp_path, "up").returncode == 0
    result = cli(env, tmp_path, "status", "--json", "--check")
    assert result.returncode == 0
    parsed = json.loads(result.stdout)
    assert (parsed["executed_count"], parsed["pending_count"], parsed["failed"]) == (2, 0, [])

    too_many = cli(env, tmp_path, "down", "3")
    assert too_many.returncode == 1
    assert "cannot roll back 3 migrations: only 2 applied" in too_many.stderr
    usage = cli(env, tmp_path, "down")
    assert usage.returncode == 2

    write(folder, "0004_gap.up.sql", "SELECT 1;")
    broken = cli(env, tmp_path, "status")
    assert broken.returncode == 1
    assert "gap in the numbering: no up file for version 0003" in broken.stderr
    assert "Traceback" not in broken.stderr


@pytest.mark.slow
# The command line's output does not depend on the backend (the runner tests cover both).
@pytest.mark.backends("embedded")
def test_dagster_job_execute_migrate(
    env: dict[str, str], tmp_path: Path, clickhouse: ClickHouseResource
) -> None:
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent))
    assert dagster is not None
    done = subprocess.run(
        [dagster, "job", "execute", "-m", "dataproc_dagster", "-j", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = done.stderr + done.stdout
    assert done.returncode == 0, log[-3000:]
    assert "RUN_SUCCESS" in log
    assert "Asset check 'no_pending_migrations' on 'clickhouse/schema' passed" in log
    assert "Asset check 'tables_match_migrations' on 'clickhouse/schema' passed" in log
    assert clickhouse.query_rows("SELECT count() FROM events") == [(3,)]


def test_a_killed_up_is_reported_as_interrupted_and_can_be_repaired_within_seconds(
    env: dict[str, str], tmp_path: Path, folder: Path
) -> None:
    import signal
    import time

    write(
        folder,
        "0003_slow.up.sql",
        "CREATE TABLE IF NOT EXISTS {database}.slow {cluster} (id UInt32) "
        "ENGINE = MergeTree ORDER BY id;\n"
        "SELECT sleep(3);\nSELECT sleep(3);\nSELECT sleep(3);",
    )
    runner = subprocess.Popen(
        [*CLI, "up"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 90
        while b"applied 0002" not in (line := runner.stderr.readline()):  # type: ignore[union-attr]
            assert line and time.monotonic() < deadline, "the runner never reached 0003"
        time.sleep(1.5)  # inside 0003: its table exists, the sleeps run
        runner.send_signal(signal.SIGKILL)
    finally:
        runner.wait(timeout=30)
        runner.stdout.close()  # type: ignore[union-attr]
        runner.stderr.close()  # type: ignore[union-attr]
    assert runner.returncode == -signal.SIGKILL

    status = cli(env, tmp_path, "status")
    assert "INTERRUPTED: migration 0003_slow (up) was interrupted" in status.stdout, status
    assert "at statement 0" not in status.stdout
    assert "LOCK claimed by host" in status.stdout and "stale" in status.stdout

    started = time.monotonic()
    repaired = cli(env, tmp_path, "repair")
    assert repaired.returncode == 0, repaired.stderr
    assert f"pid {runner.pid}" in repaired.stderr and "stale" in repaired.stderr
    assert "repaired: 0003_slow" in repaired.stdout
    # 0003 is written to be re-runnable (IF NOT EXISTS), so it simply runs again.
    again = cli(env, tmp_path, "up")
    assert again.returncode == 0, again.stderr
    assert "applied 0003_slow" in again.stderr
    assert time.monotonic() - started < 60  # not MIGRATIONS_LOCK_TTL of minutes
