"""Four partitions of one daily pipeline loaded at the same time, in four processes, against a
ClickHouse server: each day's rows exactly once, and the days loaded before stay as they were;
on the embedded engine, runs of two partitions wait for each other and both land.

This is the shared-table case of issue 21: every run stages its day and publishes only that
day's partition (``REPLACE PARTITION`` of the loads' own partitions, issue 20), so runs of
different partitions must not undo one another's days.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.integration.partitions.daily_api import (
    PER_DAY,
    TABLE,
    daily_pipeline,
    day_records,
)
from dataproc_dagster_tests.servers.http_api import ApiState, serve_api

EARLIER = ["2024-03-01", "2024-03-02"]
PARALLEL = ["2024-03-03", "2024-03-04", "2024-03-05", "2024-03-06"]


def load_day(api_url: str, clickhouse_url: str, day: str) -> str:
    """Run one partition in this (separate) process; ``ok``, or why it failed."""
    pipeline = daily_pipeline(api_url)
    resources = {"clickhouse": ClickHouseResource(url=clickhouse_url, lock_timeout=120)}
    result = pipeline.execute_in_process(
        resources=resources, partition_key=day, raise_on_error=False
    )
    if result.success:
        return "ok"
    failures = [e.step_failure_data.error for e in result.get_step_failure_events()]
    return "; ".join(str(error.message if error else "?")[:2000] for error in failures)


@pytest.mark.server
def test_four_partitions_in_parallel_on_the_server(server_clickhouse: ClickHouseResource) -> None:
    url = server_clickhouse.url
    with serve_api(ApiState(records=day_records())) as api:
        for day in EARLIER:
            assert load_day(api.url, url, day) == "ok"
        # Slow answers keep the four extracts (and so the loads) overlapping.
        api.state.delay = 0.5
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=4, mp_context=spawn) as pool:
            outcomes = list(pool.map(load_day, [api.url] * 4, [url] * 4, PARALLEL))
    assert outcomes == ["ok"] * 4
    rows = server_clickhouse.query_rows(
        f"SELECT toString(toDate(updated_at)), count(), uniqExact(id) FROM {TABLE} "
        "GROUP BY 1 ORDER BY 1"
    )
    assert rows == [(day, PER_DAY, PER_DAY) for day in EARLIER + PARALLEL]


def test_parallel_partitions_wait_for_each_other_on_the_embedded_engine(
    data_dir: Path,
) -> None:
    url = f"chdb://{data_dir / 'clickhouse'}"
    with serve_api(ApiState(records=day_records())) as api:
        api.state.delay = 0.3
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
            outcomes = list(pool.map(load_day, [api.url] * 2, [url] * 2, PARALLEL[:2]))
    assert outcomes == ["ok", "ok"]
    rows = ClickHouseResource(url=url).query_rows(
        f"SELECT toString(toDate(updated_at)), count() FROM {TABLE} GROUP BY 1 ORDER BY 1"
    )
    assert rows == [(day, PER_DAY) for day in PARALLEL[:2]]
