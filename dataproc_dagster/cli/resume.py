"""``python -m dataproc_dagster.cli.resume [RUN_ID] [--job NAME]``: re-execute a run from failure.

``dagster job execute`` starts new runs only; this is Dagster's *re-execute from failure* (the UI
button) for the command line and CI: the steps that succeeded are not run again and their
outputs (the extracted chunks) are reused, so the load step re-uses the same dataset and the
ledger keeps it exactly once.

A run whose process was killed (``kill -9``, a lost machine) stays ``STARTED`` in the instance.
When the process that wrote its events is no longer alive on this machine, the run is marked
failed first and then resumed; when it is alive, the command refuses (the run is still going).
``--force`` marks it failed without the check (a run started on another machine).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, cast

from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    JobDefinition,
    ReexecutionOptions,
    RunsFilter,
    build_reconstructable_job,
    execute_job,
)

from dataproc_dagster.cli.__main__ import quiet_known_warnings
from dataproc_dagster.core.environment import load_env_file
from dataproc_dagster.deploy.instance_config import console_run_config

RESUMABLE = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED, DagsterRunStatus.STARTED)


class ResumeError(Exception):
    """Why a run cannot be resumed, said for the command line."""


def job_from_module(module: str, name: str) -> JobDefinition:
    """The job ``name`` of the ``defs`` in ``module`` (used to rebuild the job in workers)."""
    defs = importlib.import_module(module).defs
    return defs.get_job_def(name)


def pick_run(instance: DagsterInstance, run_id: str | None, job: str | None) -> DagsterRun:
    """The run to resume: ``run_id``, else the latest run of ``job`` (of any job without it).

    Raises:
        ResumeError: No such run, or the latest run did not fail.
    """
    if run_id:
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise ResumeError(f"no run {run_id} in the Dagster instance (DAGSTER_HOME)")
        return run
    runs = instance.get_runs(filters=RunsFilter(job_name=job) if job else None, limit=1)
    if not runs:
        raise ResumeError(f"no run of job {job} yet" if job else "no run in this instance yet")
    run = runs[0]
    if run.status not in RESUMABLE:
        raise ResumeError(
            f"the latest run of job {run.job_name} ({run.run_id}) is {run.status.value}: "
            "nothing to resume (name a run id to resume an older one)"
        )
    return run


def _run_pid(instance: DagsterInstance, run: DagsterRun) -> int | None:
    """The pid of the process that wrote the run's latest event."""
    for record in reversed(instance.all_logs(run.run_id)):
        event = record.dagster_event
        if event is not None and event.pid is not None:
            return event.pid
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_run_failed(instance: DagsterInstance, run: DagsterRun, force: bool) -> DagsterRun:
    """Mark a ``STARTED`` run whose process is gone as failed, so it can be re-executed.

    Raises:
        ResumeError: Its process is still alive (and ``force`` is off).
    """
    if run.status != DagsterRunStatus.STARTED:
        return run
    pid = _run_pid(instance, run)
    if pid is not None and _alive(pid) and not force:
        raise ResumeError(
            f"run {run.run_id} is still running (process {pid} is alive); wait for it, or "
            "pass --force if that process belongs to another run on another machine"
        )
    instance.report_run_failed(
        run, message=f"marked failed by `resume`: its process (pid {pid}) is gone"
    )
    refreshed = instance.get_run_by_id(run.run_id)
    assert refreshed is not None
    return refreshed


def console_at_info(run_config: Mapping[str, Any]) -> dict[str, Any]:
    """``run_config`` with the console at INFO (at DEBUG with ``LOG_LEVEL=DEBUG``), as
    ``./run.sh job`` has it, unless the run's config sets its loggers itself."""
    if "loggers" in run_config:
        return dict(run_config)
    return {**run_config, **console_run_config()}


def resume(
    instance: DagsterInstance,
    run_id: str | None = None,
    job: str | None = None,
    module: str = "dataproc_dagster",
    force: bool = False,
) -> tuple[str, bool]:
    """Re-execute a run from failure; returns (new run id, success).

    Raises:
        ResumeError: The run cannot be resumed (see the message).
    """
    run = pick_run(instance, run_id, job)
    if run.status == DagsterRunStatus.SUCCESS:
        raise ResumeError(f"run {run.run_id} of job {run.job_name} succeeded: nothing to resume")
    if run.status not in RESUMABLE:
        raise ResumeError(f"run {run.run_id} is {run.status.value}; it cannot be resumed yet")
    run = mark_dead_run_failed(instance, run, force)
    # The run is over: pool slots its steps still hold (a step whose worker was killed never
    # gave its slot back) would keep the re-execution's steps waiting.
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    reconstructable_job = build_reconstructable_job(
        "dataproc_dagster.cli.resume",
        "job_from_module",
        reconstructable_args=cast(tuple[object], (module, run.job_name)),
    )
    options = ReexecutionOptions.from_failure(run.run_id, instance)
    with execute_job(
        reconstructable_job,
        instance=instance,
        run_config=console_at_info(run.run_config),
        tags={"dataproc/resumed_from": run.run_id},
        reexecution_options=options,
    ) as result:
        return result.run_id, result.success


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: resume, print the new run id and status; exit 1 when it fails."""
    parser = argparse.ArgumentParser(
        prog="python -m dataproc_dagster.cli.resume",
        description="Re-execute a failed or killed run from failure (Dagster re-execution).",
    )
    parser.add_argument("run_id", nargs="?", help="run to resume (default: the latest run)")
    parser.add_argument("--job", help="without RUN_ID: the latest run of this job")
    parser.add_argument(
        "--module", default="dataproc_dagster", help="module whose `defs` holds the job"
    )
    parser.add_argument(
        "--force", action="store_true", help="treat a STARTED run as dead without checking"
    )
    args = parser.parse_args(argv)
    # Like every command: .env below the environment, before the code location loads; the
    # known warnings nobody can act on are not shown.
    load_env_file()
    quiet_known_warnings()
    with DagsterInstance.get() as instance:
        try:
            new_run, success = resume(instance, args.run_id, args.job, args.module, args.force)
        except ResumeError as exc:
            print(f"resume: {exc}", file=sys.stderr)
            return 1
    print(f"re-execution run {new_run}: {'SUCCESS' if success else 'FAILURE'}")
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(main())
