"""The whole stack on real components, as docs/operations.md deploys it on several machines.

PostgreSQL (instance), moto's S3 API server (chunk store), the local ClickHouse server, Redis
(broker), two Celery workers with their own folders, and ``dagster-daemon`` working off the
run queue. The penguins pipeline (steps on the workers) and the generic HTTP job go through
the queue; then a worker is killed in the middle of the load step and the run is re-executed
from failure. Marked ``stack``: ``./run.sh test -m stack`` runs it alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core import chunk_store
from dataproc_dagster_tests.helpers.celery_location import JOB
from dataproc_dagster_tests.helpers.workers import celery_workers, machine_env
from dataproc_dagster_tests.integration.deploy.conftest import PostgresHome
from dataproc_dagster_tests.servers.http_api import ApiState, RunningApi, serve_api

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.server, pytest.mark.timeout(900)]

BIN = Path(sys.executable).parent
LOCATION = "dataproc_dagster_tests.helpers.celery_location"
DONE = ("SUCCESS", "FAILURE", "CANCELED")


@pytest.fixture
def api() -> Iterator[RunningApi]:
    with serve_api(ApiState()) as running:
        yield running


@contextmanager
def daemon(root: Path, env: dict[str, str]) -> Iterator[None]:
    """``dagster-daemon run`` on the test location; stopped by its pid."""
    log = (root / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", LOCATION],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def launch(env: dict[str, str], cwd: Path, job: str, config: Path) -> None:
    """``dagster job launch``: the run goes into the queue that the daemon works off."""
    done = subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-m", LOCATION, "-j", job, "-c", str(config)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_whole_stack_with_a_worker_killed_mid_step(
    postgres_home: PostgresHome,
    server_clickhouse: ClickHouseResource,
    s3_store: str,
    redis_url: str,
    api: RunningApi,
    tmp_path: Path,
) -> None:
    launcher_root = tmp_path / "launcher"
    env = machine_env(launcher_root, CELERY_BROKER_URL=redis_url)
    for module in ("dataproc_dagster.cli.instance_setup", "dataproc_dagster.cli.pools"):
        subprocess.run([str(BIN / "python"), "-m", module], env=env, check=True)
    celery = tmp_path / "celery.yaml"
    celery.write_text(
        f"execution:\n  config:\n    broker: '{redis_url}'\n    backend: '{redis_url}'\n"
    )
    http = tmp_path / "http.yaml"
    http.write_text(
        "ops:\n"
        "  http_to_clickhouse__extract:\n"
        "    config:\n"
        f"      url: '{api.url}/cursor'\n"
        "      paginator: {style: cursor, cursor_path: next_cursor}\n"
        "      records_path: results\n"
        "  http_to_clickhouse__load:\n"
        "    config: {table: stack_items}\n"
    )

    # 1. Both jobs through the queue: penguins' steps on the workers, the HTTP job in its run.
    with celery_workers(tmp_path / "pair", redis_url, 2) as workers, daemon(launcher_root, env):
        launch(env, launcher_root, JOB, celery)
        launch(env, launcher_root, "http_to_clickhouse", http)
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            runs = postgres_home.query("SELECT pipeline_name, status FROM runs")
            if len(runs) == 2 and all(status in DONE for _job, status in runs):
                break
            time.sleep(2)
        logs = (launcher_root / "daemon.log").read_text(errors="replace")[-3000:]
        assert sorted(runs) == sorted([(JOB, "SUCCESS"), ("http_to_clickhouse", "SUCCESS")]), logs
    assert server_clickhouse.query_rows("SELECT count() FROM penguins") == [(342,)]
    assert server_clickhouse.query_rows("SELECT count(), uniqExact(id) FROM stack_items") == [
        (250, 250)
    ]
    for worker in workers:  # each worker ran steps of the penguins run
        assert " rows in " in (worker.root / "logs" / "jobs" / f"{JOB}.log").read_text()
    # After success nothing of either run is in the store (asset outputs aside).
    assert [k for k in chunk_store.stored_files() if "/_io/clickhouse/" not in f"/{k}"] == []

    # 2. A worker dies in the middle of the load step (SIGKILL of its whole process group).
    with celery_workers(
        tmp_path / "doomed", redis_url, 2, DATAPROC_TEST_KILL_AT="staging:chunk:0"
    ) as doomed:
        run = subprocess.Popen(
            [str(BIN / "dagster"), "job", "execute", "-m", LOCATION, "-j", JOB, "-c", str(celery)],
            cwd=launcher_root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while all(w.proc.poll() is None for w in doomed):  # the load step kills its worker
            assert run.poll() is None and time.monotonic() < deadline, "no worker was killed"
            time.sleep(0.5)
        survivors = [w for w in doomed if w.proc.poll() is None]
        assert len(survivors) == 1
        # The machine of the run goes down too: nothing waits for the lost step any more.
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    # 3. Re-execution from failure on a fresh worker: rows exact, the store emptied.
    with celery_workers(tmp_path / "after", redis_url, 1):
        done = subprocess.run(
            [
                str(BIN / "python"),
                "-m",
                "dataproc_dagster.cli.resume",
                "--job",
                JOB,
                "--module",
                LOCATION,
            ],
            cwd=launcher_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert server_clickhouse.query_rows("SELECT count() FROM penguins") == [(342,)]
    assert server_clickhouse.query_rows("SELECT sum(birds) FROM penguin_species_stats") == [(342,)]
    statuses = postgres_home.query(
        "SELECT status FROM runs WHERE pipeline_name = %s ORDER BY create_timestamp", JOB
    )
    assert [s for (s,) in statuses] == ["SUCCESS", "FAILURE", "SUCCESS"]
    assert [k for k in chunk_store.stored_files() if "/_io/clickhouse/" not in f"/{k}"] == []
