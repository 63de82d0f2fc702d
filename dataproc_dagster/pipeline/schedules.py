"""Pipeline schedules: cron and time zone checked up front, and no pile-up of runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster import (
    DagsterInvalidDefinitionError,
    DagsterRunStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
)

from dataproc_dagster.core.errors import ConfigError

if TYPE_CHECKING:
    # What define_asset_job returns; Dagster exports no public name for the type.
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

ACTIVE_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def check_schedule(name: str, cron: str, timezone: str) -> None:
    """Refuse a cron string or time zone Dagster would refuse, naming the pipeline.

    Raises:
        ConfigError: For an invalid cron string or time zone.
    """
    try:
        # Dagster's own validation, the same the schedule meets when it is built.
        ScheduleDefinition(
            name=f"{name}_check", cron_schedule=cron, job_name=name, execution_timezone=timezone
        )
    except DagsterInvalidDefinitionError as exc:
        if "timezone" in str(exc):
            raise ConfigError(
                f"invalid schedule timezone {timezone!r}",
                pipeline=name,
                fix="use an IANA time zone such as UTC or Europe/Berlin",
            ) from None
        raise ConfigError(
            f"invalid cron string {cron!r}",
            pipeline=name,
            fix="use five fields: minute hour day-of-month month day-of-week, e.g. '0 6 * * *'",
        ) from None


def build_schedule(
    job: JobDefinition | UnresolvedAssetJobDefinition,
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


def optional_schedule(
    job: JobDefinition | UnresolvedAssetJobDefinition,
    cron: str | None,
    timezone: str,
    run_config: Mapping[str, Any] | None,
) -> ScheduleDefinition | None:
    """:func:`build_schedule` when there is a cron string, else ``None``."""
    return build_schedule(job, cron, timezone, run_config=run_config) if cron else None
