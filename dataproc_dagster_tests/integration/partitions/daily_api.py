"""A daily pipeline over the tests' HTTP API, which filters its records by ``updated_at``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from dataproc_dagster import (
    create_clickhouse_loader,
    create_etl_pipeline,
    create_http_extractor,
)
from dataproc_dagster.pipeline.jobs import Pipeline
from dataproc_dagster.pipeline.partitions import daily_partitions

FIRST_DAY = datetime(2024, 3, 1, tzinfo=UTC)
PER_DAY = 6
TABLE = "daily_items"


def day_records(
    days: int = 14, *, price: float = 1.0, first: datetime = FIRST_DAY
) -> list[dict[str, Any]]:
    """``PER_DAY`` records a day (one every 4 hours, UTC) for ``days`` days from ``first``."""
    records = []
    for day in range(days):
        for slot in range(PER_DAY):
            moment = first + timedelta(days=day, hours=4 * slot)
            records.append(
                {
                    "id": day * PER_DAY + slot + 1,
                    "day": moment.strftime("%Y-%m-%d"),
                    "price": price,
                    "updated_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
    return records


def parse_times(df: pd.DataFrame) -> pd.DataFrame:
    """``updated_at`` from ISO text to a UTC time."""
    df["updated_at"] = pd.to_datetime(df["updated_at"], utc=True)
    return df


def daily_pipeline(
    url: str,
    *,
    name: str = "daily_items",
    mode: str = "replace_partitions",
    window_params: dict[str, str] | None = None,
    backfill_policy: str | None = None,
    schedule: str | None = None,
    timezone: str = "UTC",
    key_columns: tuple[str, ...] = (),
) -> Pipeline:
    """The daily pipeline reading ``url``/single by window into ``daily_items``."""
    params = window_params or {"updated_from": "{start}", "updated_before": "{end}"}
    return create_etl_pipeline(
        name=name,
        extractor=create_http_extractor(f"{url}/single", window_params=params),
        transformer=parse_times,
        loader=create_clickhouse_loader(
            TABLE, mode=mode, order_by=["id"], key_columns=list(key_columns)
        ),
        partitions=daily_partitions("2024-03-01", timezone=timezone),
        time_column="updated_at",
        backfill_policy=backfill_policy,
        schedule=schedule,
        timezone=timezone,
    )
