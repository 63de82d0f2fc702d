"""Jobs for the crash tests: one per write mode, into a table with 90 partitions.

Run as real processes (``dagster job execute -m dataproc_dagster_tests.helpers.kill_job``) so
that ``DATAPROC_TEST_KILL_AT`` can SIGKILL them at a chosen instant of the load step. The source
answers ``KILL_TEST_BATCH=before`` (the table's earlier content) or ``new`` (the default), so a
brand-new run re-extracts exactly what a crashed run had extracted, as a real source would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd
from dagster import Definitions, JobDefinition

from dataproc_dagster import create_clickhouse_loader, create_etl_pipeline, create_extractor
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.settings import get_settings

PARTITIONS = 90
MODES: dict[str, dict[str, object]] = {
    "append": {},
    "upsert": {"key_columns": ["id"]},
    "replace": {},
    "replace_partitions": {},
}
# replace_partitions: the new data covers partitions 0..59; 60..89 keep their earlier rows.
NEW_PARTITIONS = {"replace_partitions": 60}


def batch(mode: str, which: str) -> pd.DataFrame:
    """The rows the source answers: ``before`` (180 rows) or ``new`` (270 rows)."""
    if which == "before":
        ids = range(10_000, 10_000 + 2 * PARTITIONS)
        return pd.DataFrame({"id": ids, "p": [i % PARTITIONS for i in ids], "v": 1})
    spread = NEW_PARTITIONS.get(mode, PARTITIONS)
    ids = range(3 * PARTITIONS)
    return pd.DataFrame({"id": ids, "p": [i % spread for i in ids], "v": 2})


def expected(mode: str) -> pd.DataFrame:
    """What the table must hold after the earlier load and one load of the new data."""
    before, new = batch(mode, "before"), batch(mode, "new")
    if mode == "replace":
        return new
    if mode == "replace_partitions":
        before = before[~before["p"].isin(set(new["p"]))]
    return pd.concat([before, new], ignore_index=True)


def _job(mode: str) -> JobDefinition:
    def rows() -> Iterator[pd.DataFrame]:
        frame = batch(mode, os.environ.get("KILL_TEST_BATCH", "new"))
        for start in range(0, len(frame), PARTITIONS):
            yield frame.iloc[start : start + PARTITIONS]

    pipeline = create_etl_pipeline(
        f"kill_{mode}",
        extractor=create_extractor(rows),
        loader=create_clickhouse_loader(
            f"kill_{mode}",
            mode=mode,
            order_by=["id"],
            partition_by="p",
            **MODES[mode],  # type: ignore[arg-type]
        ),
        chunk_rows=PARTITIONS,
    )
    clickhouse = ClickHouseResource.from_settings(get_settings())
    return pipeline.resolve_job({"clickhouse": clickhouse.get_resource_definition()})


defs = Definitions(jobs=[_job(mode) for mode in MODES])
