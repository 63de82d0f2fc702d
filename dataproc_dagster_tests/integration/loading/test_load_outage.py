"""A ClickHouse server that goes away right after a load published, then the step's own retry."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pandas as pd
import pytest
from dagster import DagsterEventType, RetryPolicy

from dataproc_dagster import create_clickhouse_loader
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.loading import publish
from dataproc_dagster_tests.helpers.pipelines import run_pipeline
from dataproc_dagster_tests.helpers.tcp_proxy import TcpProxy

PARTITIONS = 4


@pytest.mark.server
def test_an_outage_right_after_publishing_then_the_retry_loads_each_row_once(
    server_clickhouse: ClickHouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = os.environ["CLICKHOUSE_URL"]
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    proxy = TcpProxy(parts.hostname, parts.port).start()
    cut: list[str] = []

    def outage(name: str) -> None:
        # Every partition is in the target; the ledger does not say so yet.
        if name == f"publishing:partition:{PARTITIONS}" and not cut:
            cut.append(name)
            proxy.cut(seconds=3.0)

    monkeypatch.setattr(publish, "kill_point_for_tests", outage)
    frames = [
        pd.DataFrame({"id": range(i * 1000, (i + 1) * 1000), "p": i}) for i in range(PARTITIONS)
    ]
    loader = create_clickhouse_loader(
        "t", order_by=["id"], partition_by="p", retry_policy=RetryPolicy(max_retries=2, delay=4)
    )
    try:
        result = run_pipeline(
            ClickHouseResource(url=proxy.url_for(url)), frames, loader, chunk_rows=1000
        )
    finally:
        proxy.stop()
    assert cut and result.success
    retries = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert retries, "the load step did not fail during the outage"
    rows = server_clickhouse.query_rows("SELECT count(), sum(id), uniqExact(id) FROM default.t")
    assert rows == [(4000, sum(range(4000)), 4000)]
