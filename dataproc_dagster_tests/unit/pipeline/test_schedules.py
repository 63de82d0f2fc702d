"""Pipeline schedules: explicit timezones, run config of a tick, the skip while a run of the same
job is queued or running, and the two DST change days of Europe/Berlin."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    build_schedule_context,
    instance_for_test,
)
from dagster._core.definitions.run_config import RunConfig
from dagster._core.execution.validate_run_config import validate_run_config
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._utils.schedules import cron_string_iterator

from dataproc_dagster import create_clickhouse_loader, create_etl_pipeline, create_file_extractor
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.pipeline.jobs import Pipeline
from dataproc_dagster.pipeline.registry import discover_pipelines
from dataproc_dagster.sources.metabase.resource import MetabaseResource

BERLIN = ZoneInfo("Europe/Berlin")
RUN_CONFIG: dict[str, Any] = {
    "ops": {"berlin__load": {"config": {"table": "berlin_rows", "mode": "append"}}}
}


@pytest.fixture(scope="module")
def berlin(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A pipeline scheduled at 02:30 Berlin time: the hour that is skipped in March and
    repeated in October."""
    csv = Path(tmp_path_factory.mktemp("berlin")) / "rows.csv"
    csv.write_text("id,name\n1,a\n2,b\n")
    return create_etl_pipeline(
        "berlin",
        extractor=create_file_extractor(str(csv)),
        loader=create_clickhouse_loader(None),
        schedule="30 2 * * *",
        timezone="Europe/Berlin",
        schedule_run_config=RUN_CONFIG,
    )


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


def evaluate(pipeline: Pipeline, instance: DagsterInstance, when: datetime) -> Any:
    assert pipeline.schedule is not None
    context = build_schedule_context(instance=instance, scheduled_execution_time=when)
    return pipeline.schedule.evaluate_tick(context)


def test_every_pipeline_schedule_has_an_explicit_timezone() -> None:
    pipelines = discover_pipelines()
    assert pipelines, "the sample pipeline should be discovered"
    for pipeline in pipelines:
        if pipeline.schedule is not None:
            assert pipeline.schedule.execution_timezone, pipeline.name
    penguins = next(p for p in pipelines if p.name == "penguins")
    assert penguins.schedule is not None
    assert penguins.schedule.execution_timezone == "UTC"
    assert penguins.schedule.cron_schedule == "0 6 * * *"


def test_schedule_rejects_an_unknown_timezone(tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text("id\n1\n")
    with pytest.raises(ConfigError) as error:
        create_etl_pipeline(
            "bad_tz",
            extractor=create_file_extractor(str(csv)),
            loader=create_clickhouse_loader("t"),
            schedule="0 6 * * *",
            timezone="Europe/Atlantis",
        )
    assert "[pipeline bad_tz] invalid schedule timezone 'Europe/Atlantis'" in str(error.value)
    assert "use an IANA time zone such as UTC or Europe/Berlin" in str(error.value)


def test_tick_run_request_carries_run_config_and_tick(
    berlin: Pipeline, instance: DagsterInstance
) -> None:
    when = datetime(2026, 6, 15, 2, 30, tzinfo=BERLIN)
    data = evaluate(berlin, instance, when)
    assert data.skip_message is None
    [request] = data.run_requests
    assert isinstance(request, RunRequest)
    assert request.run_config == RUN_CONFIG
    assert request.run_key == "2026-06-15T02:30:00+02:00"
    assert request.tags["dataproc/scheduled_for"] == "2026-06-15T02:30:00+02:00"
    # The schedule's run config is valid for the job it launches.
    assert validate_run_config(berlin.job, RunConfig(**request.run_config).to_config_dict())


def report(instance: DagsterInstance, run: DagsterRun, event: DagsterEventType) -> None:
    """Move a run along as the run coordinator and the run worker would."""
    instance.report_dagster_event(
        DagsterEvent(event_type_value=event.value, job_name=run.job_name), run_id=run.run_id
    )


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (DagsterEventType.RUN_ENQUEUED, DagsterRunStatus.QUEUED),
        (DagsterEventType.RUN_START, DagsterRunStatus.STARTED),
    ],
)
def test_tick_skips_while_a_run_of_the_job_is_active(
    berlin: Pipeline,
    instance: DagsterInstance,
    event: DagsterEventType,
    status: DagsterRunStatus,
) -> None:
    if status == DagsterRunStatus.QUEUED:
        # What the webserver submits to the queued run coordinator: a run with its code origin.
        origin = RemoteJobOrigin(
            repository_origin=RemoteRepositoryOrigin(
                code_location_origin=InProcessCodeLocationOrigin(
                    LoadableTargetOrigin(module_name="dataproc_dagster")
                ),
                repository_name="__repository__",
            ),
            job_name=berlin.job.name,
        )
        active = instance.create_run_for_job(
            berlin.job, run_config=RUN_CONFIG, remote_job_origin=origin
        )
    else:
        active = instance.create_run_for_job(berlin.job, run_config=RUN_CONFIG)
    report(instance, active, event)
    stored = instance.get_run_by_id(active.run_id)
    assert stored is not None and stored.status == status
    when = datetime(2026, 6, 16, 2, 30, tzinfo=BERLIN)
    data = evaluate(berlin, instance, when)
    assert data.run_requests == []
    assert data.skip_message == (
        f"run {active.run_id} of berlin is still {status.value.lower()}; "
        "skipping this tick so runs do not pile up"
    )
    # Once that run has finished, the next tick launches again.
    report(instance, active, DagsterEventType.RUN_SUCCESS)
    data = evaluate(berlin, instance, when + timedelta(days=1))
    assert data.skip_message is None
    assert len(data.run_requests) == 1


def test_a_run_of_another_job_does_not_skip(berlin: Pipeline, instance: DagsterInstance) -> None:
    from dataproc_dagster.definitions import defs

    other = instance.create_run_for_job(defs.resolve_job_def("penguins"))
    report(instance, other, DagsterEventType.RUN_START)
    data = evaluate(berlin, instance, datetime(2026, 6, 17, 2, 30, tzinfo=BERLIN))
    assert data.skip_message is None
    assert len(data.run_requests) == 1


def ticks(pipeline: Pipeline, start: datetime, end: datetime) -> list[datetime]:
    assert pipeline.schedule is not None
    found = []
    for tick in cron_string_iterator(
        start.timestamp(), pipeline.schedule.cron_schedule, pipeline.schedule.execution_timezone
    ):
        if tick >= end:
            break
        found.append(tick)
    return found


@pytest.mark.parametrize(
    ("day", "offset_before", "offset_after"),
    [
        # 2026-03-29: clocks jump from 02:00 to 03:00 CET -> CEST; 02:30 does not exist.
        (datetime(2026, 3, 29), timedelta(hours=1), timedelta(hours=2)),
        # 2026-10-25: clocks fall back from 03:00 to 02:00 CEST -> CET; 02:30 happens twice.
        (datetime(2026, 10, 25), timedelta(hours=2), timedelta(hours=1)),
    ],
    ids=["spring_forward", "fall_back"],
)
def test_dst_change_days_run_exactly_once_a_day(
    berlin: Pipeline,
    instance: DagsterInstance,
    day: datetime,
    offset_before: timedelta,
    offset_after: timedelta,
) -> None:
    start = day.replace(tzinfo=BERLIN) - timedelta(days=1)
    found = ticks(berlin, start, start + timedelta(days=3))
    local_days = [t.astimezone(BERLIN).date() for t in found]
    assert local_days == [start.date() + timedelta(days=i) for i in range(3)]  # one per day
    before, change, after = found
    assert before.utcoffset() == offset_before
    assert after.utcoffset() == offset_after
    assert (before.hour, before.minute) == (2, 30)
    assert (after.hour, after.minute) == (2, 30)
    if offset_before < offset_after:
        # The missing 02:30 runs once, at the first valid time after the gap.
        assert change.astimezone(BERLIN).strftime("%H:%M %z") == "03:00 +0200"
    else:
        # The repeated 02:30 runs once, at its second occurrence (after the clocks went back,
        # 01:30 UTC), not twice.
        assert change.astimezone(BERLIN).strftime("%H:%M %z") == "02:30 +0100"

    # Evaluating the schedule at the change day's tick gives that tick's run key and config.
    data = evaluate(berlin, instance, change)
    [request] = data.run_requests
    assert request.run_key == change.isoformat()
    assert request.run_config == RUN_CONFIG


def test_integrity_check_schedule_skips_while_a_check_runs(instance: DagsterInstance) -> None:
    from dagster import Definitions

    from dataproc_dagster.integrity import job as integrity

    schedule = integrity.INTEGRITY_SCHEDULE
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status.value == "STOPPED"  # turned on per deployment
    defs = Definitions(
        assets=integrity.ASSETS,
        asset_checks=integrity.ASSET_CHECKS,
        jobs=integrity.JOBS,
        schedules=integrity.SCHEDULES,
        resources={
            "clickhouse": ClickHouseResource(url="chdb:///unused"),
            "metabase": MetabaseResource(),
        },
    )
    job = defs.resolve_job_def(integrity.JOB_NAME)
    when = datetime(2026, 10, 25, 1, 5, tzinfo=ZoneInfo("UTC"))
    context = build_schedule_context(instance=instance, scheduled_execution_time=when)
    assert len(schedule.evaluate_tick(context).run_requests) == 1
    running = instance.create_run_for_job(job)
    report(instance, running, DagsterEventType.RUN_START)
    data = schedule.evaluate_tick(
        build_schedule_context(instance=instance, scheduled_execution_time=when)
    )
    assert data.run_requests == []
    assert f"run {running.run_id} of integrity_check is still started" in (data.skip_message or "")
