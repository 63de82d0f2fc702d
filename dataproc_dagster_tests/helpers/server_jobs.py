"""Jobs for the server tests, each with the ClickHouse resource from the settings bound."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pandas as pd
from dagster import JobDefinition

from dataproc_dagster import (
    Pipeline,
    create_clickhouse_extractor,
    create_clickhouse_loader,
    create_etl_pipeline,
    create_extractor,
)
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.settings import get_settings

ROWS = 2_500
# The extract query sleeps 1 ms per row inside ClickHouse (2.5 s): the extract steps, which
# hold the "clickhouse" pool, are busy long enough to overlap when nothing serialises them.
QUERY = f"SELECT number AS n FROM numbers({ROWS}) WHERE sleepEachRow(0.001) = 0"


def _bound(pipeline: Pipeline) -> JobDefinition:
    clickhouse = ClickHouseResource.from_settings(get_settings())
    return pipeline.resolve_job({"clickhouse": clickhouse.get_resource_definition()})


def _copy(name: str) -> JobDefinition:
    pipeline = create_etl_pipeline(
        name,
        extractor=create_clickhouse_extractor(QUERY),
        loader=create_clickhouse_loader(name, mode="replace", order_by=["n"]),
    )
    return _bound(pipeline)


def copy_a() -> JobDefinition:
    """Pipeline ``copy_a``."""
    return _copy("copy_a")


def copy_b() -> JobDefinition:
    """Pipeline ``copy_b``."""
    return _copy("copy_b")


def copy_c() -> JobDefinition:
    """Pipeline ``copy_c``."""
    return _copy("copy_c")


def copy_d() -> JobDefinition:
    """Pipeline ``copy_d``."""
    return _copy("copy_d")


JOBS = (copy_a, copy_b, copy_c, copy_d)


def _frames() -> Iterator[pd.DataFrame]:
    # Runs in the extract step's own process: records whether anything imported chdb there.
    yield pd.DataFrame({"n": range(1000), "chdb_loaded": int("chdb" in sys.modules)})


def no_chdb_job() -> JobDefinition:
    """Extract (records whether chdb is imported) -> load, one process per step."""
    pipeline = create_etl_pipeline(
        "no_chdb",
        extractor=create_extractor(_frames, name="frames"),
        loader=create_clickhouse_loader("no_chdb", mode="replace", order_by=["n"]),
        executor="multiprocess",
    )
    return _bound(pipeline)


def _slow_chunk(index: int, rows: int) -> None:
    time.sleep(1.0)  # a load long enough that two runs started together would overlap


def _into_shared(name: str, mode: str) -> JobDefinition:
    def frames() -> Iterator[pd.DataFrame]:
        for part in range(3):
            yield pd.DataFrame({"n": range(part * 100, (part + 1) * 100)})

    pipeline = create_etl_pipeline(
        name,
        extractor=create_extractor(frames, name="frames"),
        loader=create_clickhouse_loader(
            "shared_table", mode=mode, order_by=["n"], on_chunk=_slow_chunk
        ),
        chunk_rows=100,
    )
    return _bound(pipeline)


def replace_shared() -> JobDefinition:
    """A full replace of ``shared_table``."""
    return _into_shared("replace_shared", "replace")


def append_shared() -> JobDefinition:
    """An append into ``shared_table``."""
    return _into_shared("append_shared", "append")
