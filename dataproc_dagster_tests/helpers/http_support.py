"""Shared helpers of the HTTP extractor tests: a started API and a real Dagster step context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pytest
from dagster import build_op_context

from dataproc_dagster.clickhouse.tables import TargetTable
from dataproc_dagster.pipeline.contracts import StepContext
from dataproc_dagster.sources.http.extractor import HttpExtractor
from dataproc_dagster_tests.servers.http_api import ApiState, RunningApi, serve_api


@pytest.fixture(name="api")
def api_fixture() -> Iterator[RunningApi]:
    """The test API on a free port of 127.0.0.1, with 250 records."""
    with serve_api(ApiState()) as running:
        yield running


@contextmanager
def step_context(
    *,
    resources: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    target: TargetTable | None = None,
    pipeline: str = "orders_sync",
) -> Iterator[StepContext]:
    """A step context over a real Dagster op context (closed, with its instance, after)."""
    with build_op_context(resources=resources or {}) as context:
        yield StepContext(pipeline, f"{pipeline}__extract", context, config or {}, target)


def extract_all(extractor: HttpExtractor, ctx: StepContext | None = None) -> pa.Table:
    """Run the extractor and return its chunks as one table (tests only)."""
    if ctx is None:
        with step_context() as own:
            return extract_all(extractor, own)
    tables = list(extractor.extract(ctx))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")
