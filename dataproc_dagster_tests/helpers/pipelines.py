"""Small pipelines built in tests from real DataFrames, run with ``execute_in_process``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from dagster import ExecuteInProcessResult

from dataproc_dagster import create_etl_pipeline, create_extractor
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.loading.loader import ClickHouseLoader


def frames_extractor(frames: Sequence[pd.DataFrame]) -> Any:
    """An extractor that yields the given frames, one chunk each."""

    def produce() -> Any:
        yield from (f.copy() for f in frames)

    return create_extractor(produce, name="frames")


def run_pipeline(
    clickhouse: ClickHouseResource,
    frames: Sequence[pd.DataFrame],
    loader: ClickHouseLoader,
    *,
    name: str = "test_pipeline",
    transformers: Sequence[Callable[..., pd.DataFrame]] = (),
    chunk_rows: int | None = None,
    raise_on_error: bool = False,
    **kwargs: Any,
) -> ExecuteInProcessResult:
    """Build and run a pipeline in-process against ``clickhouse``."""
    pipeline = create_etl_pipeline(
        name,
        extractor=frames_extractor(frames),
        loader=loader,
        transformers=transformers,
        chunk_rows=chunk_rows,
        **kwargs,
    )
    return pipeline.execute_in_process(
        resources={"clickhouse": clickhouse}, raise_on_error=raise_on_error
    )


def failure_message(result: ExecuteInProcessResult) -> str:
    """The description of the first failed step of a run."""
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            assert data is not None and data.error is not None
            return data.error.message + "".join(cause.message for cause in _causes(data.error))
    raise AssertionError("the run has no failed step")


def _causes(error: Any) -> list[Any]:
    found = []
    while getattr(error, "cause", None) is not None:
        error = error.cause
        found.append(error)
    return found


def add_loaded_flag(df: pd.DataFrame) -> pd.DataFrame:
    """A transformer that YAML pipelines of the tests name by import path: ``loaded = 1``."""
    return df.assign(loaded=1)
