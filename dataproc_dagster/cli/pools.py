"""``python -m dataproc_dagster.cli.pools``: write the ClickHouse pool limit into the instance."""

from __future__ import annotations

import sys

from dagster import DagsterInstance

from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.pipeline.pools import apply_pool_limit
from dataproc_dagster.pipeline.steps import CLICKHOUSE_POOL


def main() -> int:
    """Apply the limit to the instance in ``DAGSTER_HOME`` and say what it is."""
    settings = get_settings()
    with DagsterInstance.get() as instance:
        limit = apply_pool_limit(instance, settings)
    engine = "embedded engine" if settings.clickhouse_url.startswith("chdb:") else "server"
    print(f"pool {CLICKHOUSE_POOL}: {limit} step(s) at once (ClickHouse {engine})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
