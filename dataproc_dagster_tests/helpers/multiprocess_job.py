"""A ClickHouse -> transform -> ClickHouse job whose steps run in separate processes."""

from __future__ import annotations

import pandas as pd
from dagster import JobDefinition

from dataproc_dagster import (
    create_clickhouse_extractor,
    create_clickhouse_loader,
    create_etl_pipeline,
)
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.settings import get_settings


def double(df: pd.DataFrame) -> pd.DataFrame:
    """Per-chunk transform."""
    return df.assign(doubled=df["n"] * 2)


def multiprocess_job() -> JobDefinition:
    """The job, with the ClickHouse resource from the settings bound."""
    pipeline = create_etl_pipeline(
        "multiprocess_copy",
        extractor=create_clickhouse_extractor("SELECT number AS n FROM numbers(250000)"),
        transformers=[double],
        loader=create_clickhouse_loader("mp_copy", mode="replace", order_by=["n"]),
        executor="multiprocess",
        chunk_rows=50_000,
    )
    clickhouse = ClickHouseResource.from_settings(get_settings())
    return pipeline.resolve_job({"clickhouse": clickhouse.get_resource_definition()})
