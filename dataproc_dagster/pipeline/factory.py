"""``create_etl_pipeline``: extract -> transform* -> load (-> SQL steps) as Dagster assets and
the asset job that materializes them (see :mod:`dataproc_dagster.pipeline.assets`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dagster import (
    BackfillPolicy,
    ExecutorDefinition,
    PartitionsDefinition,
)

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.pipeline.contracts import Extractor, Loader
from dataproc_dagster.pipeline.jobs import (
    Pipeline,
    PipelineParts,
    build_asset_pipeline,
    build_op_pipeline,
)
from dataproc_dagster.pipeline.partitions import plan_partitions
from dataproc_dagster.pipeline.schedules import check_schedule
from dataproc_dagster.pipeline.sql_steps import SqlStep
from dataproc_dagster.pipeline.transformers import Transformer, create_transformer

if TYPE_CHECKING:
    # What define_asset_job returns; Dagster exports no public name for the type.
    pass

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"invalid pipeline name {name!r}",
            fix="use letters, digits and underscores, starting with a letter",
        )


def create_etl_pipeline(
    name: str,
    extractor: Extractor | None = None,
    loader: Loader | None = None,
    transformers: Sequence[Transformer | Any] = (),
    *,
    transformer: Transformer | Any | None = None,
    sql_steps: Sequence[SqlStep] = (),
    schedule: str | None = None,
    timezone: str = "UTC",
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    executor: str | ExecutorDefinition = "in_process",
    chunk_rows: int | None = None,
    schedule_run_config: Mapping[str, Any] | None = None,
    owners: Sequence[str] = (),
    group_name: str | None = None,
    allow_empty_loads: bool = False,
    partitions: PartitionsDefinition | None = None,
    time_column: str | None = None,
    backfill_policy: str | BackfillPolicy | None = None,
) -> Pipeline:
    """Build the assets and asset job ``extract -> transform* -> load -> sql*`` and its schedule.

    The loaded table is a graph-backed asset ``clickhouse/<db>/<table>`` (the extract,
    transform and load ops form its graph); each SQL step is an asset of its own table,
    downstream of the tables it reads; the source is an external asset upstream. Each table
    has asset checks run with every load (see :mod:`dataproc_dagster.pipeline.assets`).

    Args:
        name: Pipeline and job name (letters, digits, underscores).
        extractor: Where rows come from (``create_http_extractor``, ...). ``None`` for an
            ELT-only pipeline made of ``sql_steps``.
        loader: Where rows go (``create_clickhouse_loader``, or ``create_loader`` for others).
        transformers: Transformers applied in order; plain functions are wrapped.
        transformer: A single transformer (the original framework's argument name).
        sql_steps: ELT steps run in ClickHouse after the load (``create_sql_step``).
        schedule: Cron string; ``None`` for no schedule.
        timezone: The schedule's ``execution_timezone`` (always explicit; default UTC).
        description: Job description shown in the UI.
        tags: Job tags.
        executor: ``in_process`` (default: steps share one process, one embedded-engine open
            at a time), ``multiprocess``, or any executor definition (``k8s_job_executor``,
            ``celery_executor``) for steps on other machines.
        chunk_rows: Rows per chunk between steps (default ``CHUNK_ROWS``).
        schedule_run_config: Run config for scheduled runs. Op config of an asset pipeline
            nests under its graph: ``ops: {<name>__etl: {ops: {<name>__extract: {config: ...}}}}``.
        owners: Owners of the pipeline's assets (``team:data`` or e-mail addresses); default
            the pipeline module's ``OWNERS``.
        group_name: Asset group (default: the pipeline name).
        allow_empty_loads: A load of no rows passes the ``rows_loaded`` check.
        partitions: A Dagster ``PartitionsDefinition`` (``daily_partitions(start)``, hourly,
            weekly, monthly, static): the assets are partitioned, each run reads its
            partition's window (``ctx.window``; see docs/partitions.md).
        time_column: The rows' time column, for partitioned pipelines: rows outside the
            window fail the run, and ``replace_partitions`` derives ``PARTITION BY`` from it.
        backfill_policy: ``single_run`` (a range in one run, its whole window read at once),
            ``multi_run`` or a ``BackfillPolicy``; default one run per partition.

    Raises:
        ConfigError: For an invalid name, cron string, timezone or combination of steps.
    """
    _check_name(name)
    steps = list(transformers) + ([transformer] if transformer is not None else [])
    wrapped = [t if isinstance(t, Transformer) else create_transformer(t) for t in steps]
    if extractor is None and (loader is not None or wrapped):
        raise ConfigError(
            "a pipeline with a loader or transformers needs an extractor", pipeline=name
        )
    if extractor is not None and loader is None:
        raise ConfigError(
            "the pipeline has an extractor but no loader",
            pipeline=name,
            fix="pass loader=create_clickhouse_loader('table')",
        )
    if extractor is None and not sql_steps:
        raise ConfigError("the pipeline has no steps", pipeline=name)
    if schedule is not None:
        check_schedule(name, schedule, timezone)
    plan = None
    if partitions is not None:
        plan = plan_partitions(
            name,
            partitions,
            extractor=extractor,
            loader=loader,
            time_column=time_column,
            backfill_policy=backfill_policy,
            schedule=schedule,
            timezone=timezone,
        )
        loader = plan.loader
    elif time_column is not None or backfill_policy is not None:
        raise ConfigError(
            "time_column and backfill_policy apply to partitioned pipelines only",
            pipeline=name,
            fix="pass partitions=daily_partitions('2024-01-01') (or another), or drop them",
        )

    parts = PipelineParts(
        name=name,
        extractor=extractor,
        loader=loader,
        transformers=wrapped,
        sql_steps=sql_steps,
        schedule=schedule,
        timezone=timezone,
        description=description,
        tags=tags,
        executor=executor,
        chunk_rows=chunk_rows,
        schedule_run_config=schedule_run_config,
        owners=tuple(owners),
        group_name=group_name or name,
        allow_empty_loads=allow_empty_loads,
        partitioning=plan,
    )
    if getattr(loader, "from_config", False):
        return build_op_pipeline(parts)
    return build_asset_pipeline(parts)
