"""The Dagster pool limit for ClickHouse steps, from the settings.

Every step that opens ClickHouse declares the pool ``clickhouse``. The embedded engine serves one
process at a time, so its limit is 1; a ClickHouse server takes several loads at once. The limit
is ``CLICKHOUSE_POOL_LIMIT``, or (when 0) 1 on the embedded engine and 4 on a server.
``./run.sh dev`` and ``./run.sh job`` write it into the Dagster instance
(``python -m dataproc_dagster.cli.pools``), like
``dagster instance concurrency set clickhouse N``.
"""

from __future__ import annotations

import time

from dagster import DagsterInstance

from dataproc_dagster.core.settings import FrameworkSettings
from dataproc_dagster.pipeline.steps import CLICKHOUSE_POOL

EMBEDDED_POOL_LIMIT = 1
SERVER_POOL_LIMIT = 4
POOL_SET_ATTEMPTS = 3


def clickhouse_pool_limit(settings: FrameworkSettings) -> int:
    """The ``clickhouse`` pool limit: ``CLICKHOUSE_POOL_LIMIT``, else by engine."""
    if settings.clickhouse_pool_limit:
        return settings.clickhouse_pool_limit
    embedded = settings.clickhouse_url.startswith("chdb:")
    return EMBEDDED_POOL_LIMIT if embedded else SERVER_POOL_LIMIT


def apply_pool_limit(instance: DagsterInstance, settings: FrameworkSettings) -> int:
    """Set the ``clickhouse`` pool limit on ``instance``; return it.

    Commands started together on a fresh instance (``./run.sh job`` three times) may each find
    no row for the pool and insert one: the storage refuses the second insert, and setting it
    again then updates the row the other command inserted.
    """
    limit = clickhouse_pool_limit(settings)
    for attempt in range(POOL_SET_ATTEMPTS):
        try:
            instance.event_log_storage.set_concurrency_slots(CLICKHOUSE_POOL, limit)
            return limit
        except Exception as exc:
            text = str(exc)
            duplicate = "UNIQUE constraint" in text or "duplicate key" in text
            if not duplicate or attempt == POOL_SET_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return limit
