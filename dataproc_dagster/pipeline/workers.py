"""Steps on several workers share nothing but the instance, the chunk store and ClickHouse.

An executor that runs steps on other machines (Celery, Kubernetes, Dask, Docker) needs a
ClickHouse server and a chunk store every worker reaches. The embedded engine is a folder on
one machine, guarded by a per-machine directory lock, and the local chunk folder is on one
machine's disk: such a run is refused before it writes anything, with the setting to change.
"""

from __future__ import annotations

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.settings import FrameworkSettings, get_settings

# Names of the Dagster executors that run steps on other machines (dagster-celery, dagster-k8s,
# dagster-celery-k8s, dagster-celery-docker, dagster-docker, dagster-dask). Every other executor
# (in_process, multiprocess, execute_in_process's own) keeps the steps on the run's machine.
MULTI_WORKER_EXECUTORS = frozenset(
    {"celery", "k8s", "celery-k8s", "celery-docker", "docker", "dask"}
)


def check_shared_storage(executor: str, settings: FrameworkSettings | None = None) -> None:
    """Refuse an executor that spreads steps over workers on one-machine storage.

    Args:
        executor: The name of the job's executor (``context.job_def.executor_def.name``).
        settings: The framework settings (default: the process's).

    Raises:
        ConfigError: When the executor runs steps elsewhere and ClickHouse is the embedded
            engine or the chunks stay in the local folder.
    """
    if executor not in MULTI_WORKER_EXECUTORS:
        return
    s = settings or get_settings()
    if s.clickhouse_url.startswith("chdb:"):
        raise ConfigError(
            f"the {executor!r} executor runs steps on several workers, but ClickHouse is the "
            "embedded engine (a folder on one machine whose lock holds per machine)",
            source="CLICKHOUSE_URL",
            fix="point CLICKHOUSE_URL at a ClickHouse server every worker reaches "
            "(http(s)://host:8123), or run the pipeline with the in_process or multiprocess "
            "executor",
        )
    if not s.chunk_store:
        raise ConfigError(
            f"the {executor!r} executor runs steps on several workers, but the chunks between "
            "steps stay in this machine's data folder",
            source="CHUNK_STORE",
            fix="set CHUNK_STORE=s3://bucket/prefix (with CHUNK_STORE_ENDPOINT_URL and "
            "credentials) on every worker, see docs/operations.md",
        )
