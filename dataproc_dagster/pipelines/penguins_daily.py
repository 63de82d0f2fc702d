"""Sample partitioned pipeline: the Palmer penguins observed day by day, loaded per day.

The same offline data set as :mod:`dataproc_dagster.pipelines.penguins`, with a synthetic
observation date: penguin number ``i`` of the CSV was observed on 2024-01-01 plus ``i % 31``
days, so January 2024 holds 31 daily partitions of 11 or 12 birds. Each run reads its
partition's day (``ctx.window``), keeps that day's birds and replaces that day's ClickHouse
partition of ``default.penguin_observations``: backfill January from the UI (the asset's
*Partitions* tab, *Materialize*, a range) or with ``dagster asset materialize
--partition-range``, and see which days loaded (docs/partitions.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pandas as pd

from dataproc_dagster import (
    create_clickhouse_loader,
    create_etl_pipeline,
    create_extractor,
)
from dataproc_dagster.pipeline.contracts import StepContext
from dataproc_dagster.pipeline.partitions import daily_partitions
from dataproc_dagster.pipelines.penguins import PENGUINS_CSV, clean_penguins

OWNERS = ["team:data-engineering"]
FIRST_DAY = date(2024, 1, 1)
DAYS = 31


def observed_penguins(ctx: StepContext) -> Iterator[pd.DataFrame]:
    """The birds observed in the run's window (one day, or a range in a single-run backfill)."""
    window = ctx.window
    assert window is not None and window.start is not None and window.end is not None
    first, last = window.start.date(), window.end.date()
    with PENGUINS_CSV.open(encoding="utf-8") as handle:
        birds = pd.read_csv(handle)
    birds.insert(0, "penguin_id", range(1, len(birds) + 1))
    offsets = pd.to_timedelta(birds.index % DAYS, unit="D")
    birds.insert(1, "observed_on", (pd.Timestamp(FIRST_DAY) + offsets).date)
    ctx.log.info(f"penguins observed from {first} to {last - timedelta(days=1)}")
    yield birds[(birds["observed_on"] >= first) & (birds["observed_on"] < last)]


def clean_observations(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`clean_penguins`, with ``unknown`` for a missing sex.

    The first partition loaded creates the table from its rows' types; a day without a missing
    sex would make ``sex`` non-Nullable and a later day's NULL fail the load, so the column
    never holds NULL (production tables are created by a migration instead).
    """
    df = clean_penguins(df)
    df["sex"] = df["sex"].fillna("unknown").astype("string")
    return df


pipeline = create_etl_pipeline(
    name="penguins_daily",
    extractor=create_extractor(observed_penguins, name="penguin_observations"),
    transformer=clean_observations,
    loader=create_clickhouse_loader(
        "penguin_observations", mode="replace_partitions", order_by=["penguin_id"]
    ),
    partitions=daily_partitions(FIRST_DAY.isoformat(), end="2024-02-01"),
    time_column="observed_on",
    backfill_policy="single_run",
    description="Palmer penguins by observation day -> clean + derive -> ClickHouse "
    "penguin_observations (replace_partitions, one ClickHouse partition per day)",
)
