"""Dagster's floor for the HTTP benchmark: a trivial two-op job with the in-process executor.

``dagster job execute -m dataproc_dagster_tests.performance.floor_job -j floor`` costs what any
job launched that way costs (Python and Dagster start-up, the run's events); the benchmark
subtracts it from the ``http_to_clickhouse`` job to show the framework's own overhead.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor, job, op


@op
def first() -> int:
    """Hand a value to the next op."""
    return 1


@op
def second(value: int) -> int:
    """Take it."""
    return value + 1


@job(executor_def=in_process_executor)
def floor() -> None:
    """Two ops, one dependency, nothing else."""
    second(first())


defs = Definitions(jobs=[floor])
