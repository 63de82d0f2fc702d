"""``python -m dataproc_dagster.cli.chunks [--dry-run]`` (``./run.sh cleanup_chunks``).

Applies the retention rule of :mod:`dataproc_dagster.core.chunk_retention` to the chunk folders
under ``<DATAPROC_DATA_DIR>/runs``, with the run facts of the Dagster instance (``DAGSTER_HOME``;
without it, only the age rule applies), and prints each folder with what happened and why.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from dataproc_dagster.core.chunk_retention import decide, human_size, remove, run_folders
from dataproc_dagster.core.errors import DataprocError
from dataproc_dagster.core.settings import get_settings

# Statuses of a run that may still write or read its chunks.
BUSY = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "MANAGED", "CANCELING")


def run_facts() -> tuple[Callable[[str], bool], Callable[[str], str | None], Any]:
    """``in_progress`` and ``succeeded_reexecution`` from the instance, and the instance
    (to close); without ``DAGSTER_HOME`` nothing is known (the age rule alone)."""
    if not os.environ.get("DAGSTER_HOME"):
        return (lambda _run: False), (lambda _run: None), None
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    instance = DagsterInstance.get()

    def in_progress(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and run.status.value in BUSY

    def succeeded_reexecution(run_id: str) -> str | None:
        children = instance.get_runs(
            filters=RunsFilter(
                tags={"dagster/parent_run_id": run_id}, statuses=[DagsterRunStatus.SUCCESS]
            ),
            limit=1,
        )
        return children[0].run_id if children else None

    return in_progress, succeeded_reexecution, instance


def main(argv: Sequence[str] | None = None) -> int:
    """Apply the rule (or show it with ``--dry-run``); 0, or 2 when the settings are invalid."""
    parser = argparse.ArgumentParser(
        prog="python -m dataproc_dagster.cli.chunks",
        description="Remove the chunk folders of runs that the retention rule lets go.",
    )
    parser.add_argument("--dry-run", action="store_true", help="show, remove nothing")
    parser.add_argument("--days", type=float, help="retention in days (CHUNK_RETENTION_DAYS)")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except DataprocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    days = settings.chunk_retention_days if args.days is None else args.days
    in_progress, succeeded, instance = run_facts()
    try:
        folders = run_folders(settings.runs_dir)
        decisions = decide(
            folders,
            max_age_days=days,
            in_progress=in_progress,
            succeeded_reexecution=succeeded,
        )
    finally:
        if instance is not None:
            instance.dispose()
    done = [] if args.dry_run else remove(decisions)
    for decision in decisions:
        verb = ("would remove" if args.dry_run else "removed") if decision.remove else "kept"
        size = human_size(decision.folder.size_bytes)
        print(f"{verb:<12} {decision.folder.run_id} ({size}): {decision.reason}")
    freed = sum(d.folder.size_bytes for d in decisions if d.remove)
    kept = sum(d.folder.size_bytes for d in decisions if not d.remove)
    what = "would free" if args.dry_run else "freed"
    print(
        f"{len(folders)} run folder(s) in {settings.runs_dir}: {what} {human_size(freed)} "
        f"({len(done) if not args.dry_run else sum(d.remove for d in decisions)} folder(s)), "
        f"{human_size(kept)} kept (CHUNK_RETENTION_DAYS={days:g})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
