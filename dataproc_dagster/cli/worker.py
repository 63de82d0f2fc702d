"""``./run.sh worker [NAME]``: a Celery worker that runs steps of the pipelines.

Steps of jobs that use ``dagster_celery.celery_executor`` are Celery tasks: the run sends each
step to the broker and a worker, on this or another machine, runs it. A worker shares nothing
with the others but the Dagster instance (PostgreSQL, ``DAGSTER_POSTGRES_URL``), the chunk
store (``CHUNK_STORE=s3://...``) and the ClickHouse server (``CLICKHOUSE_URL``); the broker is
``CELERY_BROKER_URL`` (Redis or RabbitMQ), the result backend ``CELERY_BACKEND_URL`` (default:
the broker). The worker takes one step at a time (``--concurrency``, ``WORKER_CONCURRENCY``).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.redaction import mask_url, register_secret, secret_values_of


def worker_config(broker: str, backend: str) -> str:
    """The worker's YAML: the same ``execution.config`` block the job's executor gets."""
    return f"execution:\n  config:\n    broker: {broker!r}\n    backend: {backend!r}\n"


def worker_command(name: str, config_file: Path, concurrency: int) -> list[str]:
    """``dagster-celery worker start`` with one step at a time, fairly distributed."""
    tool = shutil.which("dagster-celery") or str(Path(sys.executable).parent / "dagster-celery")
    return [
        tool,
        "worker",
        "start",
        "-n",
        name,
        "-y",
        str(config_file),
        "-A",
        "dagster_celery.app",
        "--",
        f"--concurrency={concurrency}",
        "--prefetch-multiplier=1",
        "-O",
        "fair",
    ]


def main(argv: list[str] | None = None) -> int:
    """Write the worker's config into ``DAGSTER_HOME`` and replace this process by the worker."""
    args = sys.argv[1:] if argv is None else argv
    name = args[0] if args else f"dataproc-{socket.gethostname()}-{os.getpid()}"
    try:
        broker = os.environ.get("CELERY_BROKER_URL", "").strip()
        if not broker:
            raise ConfigError(
                "CELERY_BROKER_URL is not set",
                source="CELERY_BROKER_URL",
                fix="export CELERY_BROKER_URL=redis://host:6379/0 (or amqp://...), the broker "
                "the jobs' celery_executor uses",
            )
        backend = os.environ.get("CELERY_BACKEND_URL", "").strip() or broker
        for url in (broker, backend):
            for secret in secret_values_of(url):
                register_secret(secret)
        home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home")
        home.mkdir(parents=True, exist_ok=True)
        config_file = home / f"celery-worker-{name}.yaml"
        config_file.write_text(worker_config(broker, backend))
        config_file.chmod(0o600)  # the broker URL may hold a password
        concurrency = int(os.environ.get("WORKER_CONCURRENCY", "1"))
    except (ConfigError, ValueError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 1
    print(f"==> Celery worker {name} on broker {mask_url(broker)}", file=sys.stderr)
    command = worker_command(name, config_file, concurrency)
    # Celery's worker looks up `celery` on PATH: the one of this environment.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
