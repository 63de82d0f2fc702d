"""``create_etl_pipeline``: extract -> transform* -> load (-> SQL steps) as one Dagster job."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagster import (
    DagsterRunStatus,
    ExecutorDefinition,
    GraphDefinition,
    JobDefinition,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    in_process_executor,
    multiprocess_executor,
)
from dagster._core.definitions.dependency import DependencyDefinition, NodeInvocation
from dagster._utils.schedules import is_valid_cron_string

from dataproc_dagster.errors import ConfigError
from dataproc_dagster.ops.base import Extractor, Loader
from dataproc_dagster.ops.elt import SqlStep, make_sql_op
from dataproc_dagster.ops.steps import make_extract_op, make_transform_op
from dataproc_dagster.ops.transformers import Transformer, create_transformer

EXECUTORS: dict[str, ExecutorDefinition] = {
    "in_process": in_process_executor,
    "multiprocess": multiprocess_executor,
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
ACTIVE_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class Pipeline:
    """A pipeline: its job and, when it has a cron, its schedule."""

    name: str
    job: JobDefinition
    schedule: ScheduleDefinition | None
    module: str = ""
    # Tables the pipeline writes (``db.table``, or a bare name in the resource's database), for
    # the integrity checks: the loader's target, then each SQL step's table.
    targets: tuple[str, ...] = ()


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"invalid pipeline name {name!r}",
            fix="use letters, digits and underscores, starting with a letter",
        )


def _check_schedule(name: str, cron: str, timezone: str) -> None:
    if not is_valid_cron_string(cron):
        raise ConfigError(
            f"invalid cron string {cron!r}",
            pipeline=name,
            fix="use five fields: minute hour day-of-month month day-of-week, e.g. '0 6 * * *'",
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"invalid schedule timezone {timezone!r}",
            pipeline=name,
            fix="use an IANA time zone such as UTC or Europe/Berlin",
        ) from None


def build_schedule(
    job: JobDefinition,
    cron: str,
    timezone: str,
    *,
    run_config: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> ScheduleDefinition:
    """A schedule that skips a tick while an earlier run of the job is queued or running."""
    job_name = job.name

    def evaluate(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        active = context.instance.get_run_records(
            RunsFilter(job_name=job_name, statuses=ACTIVE_STATUSES), limit=1
        )
        if active:
            run = active[0].dagster_run
            return SkipReason(
                f"run {run.run_id} of {job_name} is still {run.status.value.lower()}; "
                "skipping this tick so runs do not pile up"
            )
        tick = context.scheduled_execution_time
        key = tick.isoformat() if tick else None
        return RunRequest(
            run_key=key,
            run_config=dict(run_config or {}),
            tags={"dataproc/scheduled_for": key or ""},
        )

    return ScheduleDefinition(
        name=name or f"{job_name}_schedule",
        cron_schedule=cron,
        execution_timezone=timezone,
        job=job,
        execution_fn=evaluate,
        description=f"Runs {job_name} at '{cron}' ({timezone}); skips while a run is active.",
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
) -> Pipeline:
    """Build a Dagster job ``extract -> transform* -> load -> sql*`` and its schedule.

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
        schedule_run_config: Run config for scheduled runs.

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
        _check_schedule(name, schedule, timezone)

    nodes: list[Any] = []
    deps: dict[Any, dict[str, DependencyDefinition]] = {}
    previous: str | None = None
    if extractor is not None and loader is not None:
        extract = make_extract_op(
            name, f"{name}__extract", extractor, target=loader.target, chunk_rows=chunk_rows
        )
        nodes.append(extract)
        previous = extract.name
        for index, step in enumerate(wrapped, start=1):
            op_def = make_transform_op(name, f"{name}__transform_{index}_{_slug(step.name)}", step)
            nodes.append(op_def)
            deps[NodeInvocation(op_def.name)] = {"chunks": DependencyDefinition(previous)}
            previous = op_def.name
        load = loader.build_op(name, f"{name}__load")
        nodes.append(load)
        deps[NodeInvocation(load.name)] = {"chunks": DependencyDefinition(previous)}
        previous = load.name
    for index, sql in enumerate(sql_steps, start=1):
        op_def = make_sql_op(name, f"{name}__{_slug(sql.name or 'sql_' + sql.table)}_{index}", sql)
        nodes.append(op_def)
        deps[NodeInvocation(op_def.name)] = (
            {"after": DependencyDefinition(previous)} if previous else {}
        )
        previous = op_def.name

    graph = GraphDefinition(
        name=name,
        node_defs=nodes,
        dependencies=deps,
        description=description or _describe(extractor, wrapped, loader, sql_steps),
    )
    job = graph.to_job(
        name=name,
        tags={"dataproc/pipeline": name, **dict(tags or {})},
        executor_def=_executor(name, executor),
    )
    sched = (
        build_schedule(job, schedule, timezone, run_config=schedule_run_config)
        if schedule
        else None
    )
    targets = [loader.target.qualified] if loader is not None and loader.target else []
    targets += [sql.table for sql in sql_steps]
    return Pipeline(name=name, job=job, schedule=sched, targets=tuple(targets))


def _executor(name: str, executor: str | ExecutorDefinition) -> ExecutorDefinition:
    if isinstance(executor, ExecutorDefinition):
        return executor
    if executor not in EXECUTORS:
        raise ConfigError(
            f"unknown executor {executor!r}",
            pipeline=name,
            fix=f"use one of {', '.join(EXECUTORS)}, or pass an executor definition "
            "(e.g. dagster_k8s.k8s_job_executor)",
        )
    return EXECUTORS[executor]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "step"


def _describe(
    extractor: Extractor | None,
    transformers: Sequence[Transformer],
    loader: Loader | None,
    sql_steps: Sequence[SqlStep],
) -> str:
    parts = []
    if extractor is not None:
        parts.append(extractor.describe())
    parts.extend(f"transform {t.name}" for t in transformers)
    if loader is not None:
        parts.append(loader.describe())
    parts.extend(s.describe() for s in sql_steps)
    return " -> ".join(parts)
