"""A job whose load fails once after two chunks, for re-execution tests.

It lives at module level so that Dagster can reconstruct it for ``execute_job``. The fault is
armed by creating the file named in ``DATAPROC_TEST_FAULT_FILE``; it disarms itself when it fires.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, JobDefinition, execute_job, reconstructable

from dataproc_dagster import create_clickhouse_loader, create_etl_pipeline, create_extractor
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.settings import get_settings

CHUNKS = 5
ROWS_PER_CHUNK = 1000


class InjectedFault(RuntimeError):
    """The failure the test injects."""


def fail_once_after_two_chunks(index: int, rows: int) -> None:
    """Raise once, after the third chunk was staged, while the fault file exists."""
    flag = Path(os.environ["DATAPROC_TEST_FAULT_FILE"])
    if index == 2 and flag.exists():
        flag.unlink()
        raise InjectedFault(f"injected failure after {rows} staged rows")


def _rows() -> object:
    for chunk in range(CHUNKS):
        start = chunk * ROWS_PER_CHUNK
        yield pd.DataFrame({"id": range(start, start + ROWS_PER_CHUNK), "chunk": chunk})


def faulty_job() -> JobDefinition:
    """The pipeline job with the ClickHouse resource from the settings bound."""
    pipeline = create_etl_pipeline(
        "faulty_append",
        extractor=create_extractor(_rows),
        loader=create_clickhouse_loader(
            "faulty_events", order_by=["id"], on_chunk=fail_once_after_two_chunks
        ),
        chunk_rows=ROWS_PER_CHUNK,
    )
    clickhouse = ClickHouseResource.from_settings(get_settings())
    return pipeline.resolve_job({"clickhouse": clickhouse.get_resource_definition()})


@contextmanager
def instance_with_a_failed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[DagsterInstance, str]]:
    """A temporary Dagster instance (in ``tmp_path/dagster_home``) where the job failed once."""
    fault = tmp_path / "fault"
    fault.touch()
    monkeypatch.setenv("DATAPROC_TEST_FAULT_FILE", str(fault))
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        with execute_job(reconstructable(faulty_job), instance=instance) as first:
            assert not first.success
        yield instance, first.run_id


def __getattr__(name: str) -> object:
    # ``defs`` for `python -m dataproc_dagster.cli.resume --module ...`, built on first use so that
    # importing this module does not read the settings.
    if name == "defs":
        from dagster import Definitions

        return Definitions(jobs=[faulty_job()])
    raise AttributeError(name)
