"""``python -m dataproc_dagster.cli.pools``: write the ClickHouse pool limit into the instance."""

from __future__ import annotations

import sys

from dagster import DagsterInstance

from dataproc_dagster.core.errors import DataprocError
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.pipeline.pools import apply_pool_limit
from dataproc_dagster.pipeline.steps import CLICKHOUSE_POOL


def main() -> int:
    """Apply the limit to the instance in ``DAGSTER_HOME`` and say what it is.

    Returns 2, after one line with the message and its fix, when the settings are invalid (the
    first thing ``./run.sh job`` and ``dev`` run: no traceback before the message).
    """
    try:
        settings = get_settings()
    except DataprocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with DagsterInstance.get() as instance:
        limit = apply_pool_limit(instance, settings)
    engine = "embedded engine" if settings.clickhouse_url.startswith("chdb:") else "server"
    print(f"pool {CLICKHOUSE_POOL}: {limit} step(s) at once (ClickHouse {engine})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
