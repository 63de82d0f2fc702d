"""``./run.sh deploy``: the deployment gate on the Postgres-backed stack, and where it stops."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from dataproc_dagster.cli.deploy import STEPS, listed_schedules
from dataproc_dagster_tests.integration.deploy.conftest import PostgresHome
from dataproc_dagster_tests.integration.deploy.test_postgres_instance import (
    REPO,
    penguin_rows,
    stack_env,
)


def deploy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["./run.sh", "deploy", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_the_gate_has_the_framework_steps_in_order() -> None:
    assert [name for name, _step in STEPS] == [
        "install",
        "instance",
        "migrate",
        "test",
        "schedules",
        "integrity",
        "verify",
    ]
    assert listed_schedules() == ["penguins_schedule", "integrity_check_schedule"]


@pytest.mark.slow
def test_the_gate_passes_on_the_postgres_stack(postgres_home: PostgresHome, data_dir: Path) -> None:
    done = deploy(stack_env(postgres_home, data_dir))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "deploy: all 7 steps passed" in done.stdout
    assert "instance storage ready (PostgreSQL)" in done.stdout
    assert " passed in " in done.stdout  # the smoke tests ran
    runs = postgres_home.query("SELECT pipeline_name, status FROM runs")
    assert ("penguins", "SUCCESS") in runs  # the smoke run, through the queue
    running = postgres_home.query("SELECT count(*) FROM instigators WHERE status = 'RUNNING'")
    assert running[0][0] >= 2
    assert penguin_rows(data_dir) == 342


@pytest.mark.slow
def test_the_gate_stops_at_a_broken_migration(
    postgres_home: PostgresHome, data_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(REPO / "migrations", folder)
    (folder / "0002_broken.up.sql").write_text("CREATE TABLE broken (id UInt64 ENGINE = Nope\n")
    (folder / "0002_broken.down.sql").write_text("DROP TABLE IF EXISTS broken\n")
    done = deploy(stack_env(postgres_home, data_dir, MIGRATIONS_DIR=str(folder)), "--skip-tests")
    assert done.returncode == 1
    assert "deploy: step migrate failed" in done.stdout
    assert "stopped at step 3/7 (migrate)" in done.stdout
    assert "[4/7]" not in done.stdout


@pytest.mark.slow
def test_the_gate_stops_when_clickhouse_is_down(
    postgres_home: PostgresHome, data_dir: Path
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = stack_env(postgres_home, data_dir, CLICKHOUSE_URL=f"http://127.0.0.1:{port}")
    done = deploy(env, "--skip-tests")
    assert done.returncode == 1
    assert "deploy: step migrate failed" in done.stdout, done.stdout[-3000:]
    assert "[4/7]" not in done.stdout
