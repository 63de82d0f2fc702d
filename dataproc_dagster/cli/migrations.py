"""Command line: ``python -m dataproc_dagster.cli.migrations status|up|down N|repair|baseline V``.

Exit codes: 0 done, 1 refused or failed (the message says why and what to do), 2 bad usage,
3 ``status --check`` found pending, failed, edited or missing migrations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from clickhouse_connect.driver.exceptions import ClickHouseError

from dataproc_dagster.core.errors import DataprocError
from dataproc_dagster.migrations.runner import ClickHouseMigrationManager
from dataproc_dagster.migrations.status import CommandResult, MigrationState, MigrationStatus


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataproc_dagster.cli.migrations",
        description="ClickHouse migrations from NNNN_name.up.sql / .down.sql files.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", help="migrations folder (default: MIGRATIONS_DIR or migrations/)")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, parents=[common])

    status = add("status", "show applied, pending and failed migrations")
    status.add_argument(
        "--check", action="store_true", help="exit 3 unless everything is applied and clean"
    )
    up = add("up", "apply the pending migrations")
    up.add_argument("--dry-run", action="store_true", help="print the statements, change nothing")
    down = add("down", "roll back the last N migrations")
    down.add_argument("count", type=int, help="how many migrations to roll back")
    repair = add("repair", "clear failed migrations after a manual fix")
    repair.add_argument(
        "--applied",
        action="store_true",
        help="mark them applied (you completed them by hand) instead of pending",
    )
    baseline = add("baseline", "mark files up to V as applied")
    baseline.add_argument("version", type=int, help="last version already in the database")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        manager = ClickHouseMigrationManager(folder=args.dir, log=_print_progress)
        result = _run(manager, args)
    except DataprocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ClickHouseError as exc:  # reading the state table failed (permissions, server gone)
        print(f"error: ClickHouse refused a state table query: {exc}", file=sys.stderr)
        return 1
    if isinstance(result, CommandResult) and not result.dry_run:
        _report_to_dagster(manager, result)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _print_human(result)
    if isinstance(result, MigrationStatus) and args.check and not result.clean:
        return 3
    return 0


def _run(
    manager: ClickHouseMigrationManager, args: argparse.Namespace
) -> MigrationStatus | CommandResult:
    if args.command == "status":
        return manager.get_migration_status()
    if args.command == "up":
        return manager.apply(dry_run=args.dry_run)
    if args.command == "down":
        return manager.rollback_migrations(args.count)
    if args.command == "repair":
        return manager.repair(mark_applied=args.applied)
    return manager.baseline(args.version)


def _report_to_dagster(manager: ClickHouseMigrationManager, result: CommandResult) -> None:
    """Record the schema and its checks in the Dagster instance at ``DAGSTER_HOME``, so the UI
    shows them after a migration from the command line (a no-op without ``DAGSTER_HOME``)."""
    if not os.environ.get("DAGSTER_HOME"):
        return
    try:
        # Only with DAGSTER_HOME set: the command stays quick (and Dagster-free) without it.
        from dagster import DagsterInstance

        from dataproc_dagster.migrations.job import report_schema_runless

        with DagsterInstance.get() as instance:
            evaluations = report_schema_runless(instance, manager, result)
    except Exception as exc:  # the migration itself succeeded; say why the UI lags behind
        print(f"warning: not recorded in the Dagster instance: {exc}", file=sys.stderr)
        return
    passed = sum(e.passed for e in evaluations)
    print(
        f"recorded clickhouse/schema in the Dagster instance: {passed}/{len(evaluations)} "
        "checks passed",
        file=sys.stderr,
    )


def _print_progress(message: str) -> None:
    if not message.startswith("[dry run]"):  # the dry run's statements are printed in full below
        print(message, file=sys.stderr)


def _print_human(result: MigrationStatus | CommandResult) -> None:
    if isinstance(result, MigrationStatus):
        print(_format_status(result))
        return
    if result.dry_run:
        if not result.statements:
            print("-- dry run: no pending migration")
        for item in result.statements:
            print(f"-- {item.migration}, statement {item.number}")
            print(item.sql + ";")
        return
    verb = result.verb.replace("_", " ")
    if result.done:
        print(f"{verb}: {', '.join(result.done)}")
    elif result.verb == "applied":
        print(f"{verb}: nothing (no migration pending)")
    else:
        print(f"{verb}: nothing")
    print(_format_status(result.status))


def _format_status(status: MigrationStatus) -> str:
    lines = [
        f"database {status.database}, folder {status.folder}",
        f"in the database: {status.executed_count} applied, {status.pending_count} pending, "
        f"{status.failed_count} failed",
        f"{'VERSION':<8} {'STATUS':<9} {'APPLIED AT':<26} {'MS':>7}  FILE",
    ]
    for row in status.migrations:
        flag = "" if row.checksum_ok else "  (EDITED: checksum mismatch)"
        lines.append(
            f"{row.version:<8} {row.status:<9} {row.applied_at or '-':<26} "
            f"{row.duration_ms if row.duration_ms is not None else '-':>7}  "
            f"{row.file}{flag}"
        )
    for failed in status.failed:
        kind = "FAILED"
        if failed.status == MigrationState.RUNNING:
            kind = "RUNNING" if failed.interrupted is False else "INTERRUPTED"
        lines.append(f"{kind}: {failed.describe()}")
    for holder in status.lock_holders or ():
        lines.append(f"LOCK claimed by {holder.owner}: {holder.state}")
    for missing in status.missing_files:
        lines.append(f"MISSING FILE for applied version {missing}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
