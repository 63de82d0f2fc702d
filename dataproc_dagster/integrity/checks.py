"""Integrity checks: the ``./run.sh check`` and deploy-time checks, as a library.

Each check returns a :class:`CheckResult` (passed, failed, warning or skipped, with metadata
for the Dagster UI). The job ``integrity_check`` (``dataproc_dagster/integrity/job.py``) runs
them as asset checks; ``python -m dataproc_dagster.cli.integrity`` (``./run.sh check``)
prints them and exits 1 when one fails. Checks open one connection at a time and close it,
so they work on the embedded engine, and never print a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dataproc_dagster.clickhouse.connection import (
    ClickHouseConnection,
    HasConnection,
    as_connection,
)
from dataproc_dagster.core.errors import DataprocError
from dataproc_dagster.integrity.results import (
    CheckResult,
    CheckStatus,
    JsonValue,
    timed,
    when_failed,
)
from dataproc_dagster.integrity.tables import check_pipeline_tables
from dataproc_dagster.loading.ledger import LEDGER_TABLE, unfinished, work_tables
from dataproc_dagster.loading.publish import recover_target
from dataproc_dagster.migrations.runner import ClickHouseMigrationManager

CHECK_CLICKHOUSE = "clickhouse_reachable"
CHECK_METABASE = "metabase_reachable"
CHECK_MIGRATIONS = "migrations_up_to_date"
CHECK_LOADS = "no_unfinished_loads"

PASSED, FAILED, WARNING, SKIPPED = CheckStatus  # short names for the results below


# ClickHouse


def check_clickhouse(clickhouse: ClickHouseConnection) -> CheckResult:
    """ClickHouse reachable: engine, server version, database and its table count."""

    def body() -> CheckResult:
        engine = "embedded chDB" if clickhouse.is_embedded else "ClickHouse server"
        with clickhouse.get_client(step="integrity_check") as client:
            version = str(client.query("SELECT version()").result_rows[0][0])
            database = str(client.query("SELECT currentDatabase()").result_rows[0][0])
            tables = int(
                client.query(
                    "SELECT count() FROM system.tables WHERE database = %(db)s",
                    parameters={"db": database},
                ).result_rows[0][0]
            )
        return CheckResult(
            CHECK_CLICKHOUSE,
            PASSED,
            f"{engine} {version} answers; database {database} has {tables} table(s)",
            metadata={
                "engine": engine,
                "version": version,
                "database": database,
                "tables": tables,
                "where": clickhouse.describe(),
            },
        )

    result = timed(CHECK_CLICKHOUSE, body)
    return when_failed(
        result,
        _safe_describe(clickhouse) if result.failed else "",
        "check CLICKHOUSE_URL (chdb:///dir or http(s)://host:8123), CLICKHOUSE_USER and "
        "CLICKHOUSE_PASSWORD, and that the server is up",
    )


def _safe_describe(clickhouse: ClickHouseConnection) -> str:
    try:
        return clickhouse.describe()
    except DataprocError as exc:
        return exc.message


def check_unfinished_loads(clickhouse: ClickHouseConnection) -> CheckResult:
    """Finish interrupted publishes, then list staging tables and unfinished loads left.

    A load left ``publishing`` is finished here (rolled forward), as by the next load of its
    table; a load that never reached publishing is undone once its owner is gone. What is left
    (a load running now, or one whose owner's lease has not run out) is a warning, not a
    failure: the target tables are consistent (docs/loading.md).
    """

    def body() -> CheckResult:
        tables: list[str] = []
        loads: list[str] = []
        finished: list[str] = []
        with clickhouse.get_client(step="integrity_check") as client:
            databases = [
                row[0]
                for row in client.query(
                    "SELECT DISTINCT database FROM system.tables WHERE name = %(t)s OR "
                    "startsWith(name, '_stage_') OR startsWith(name, '_shadow_') "
                    "ORDER BY database",
                    parameters={"t": LEDGER_TABLE},
                ).result_rows
            ]
            for database in databases:
                for target in sorted({w.table for w in work_tables(client, database)}):
                    finished += recover_target(
                        client, database, target, exclusive=clickhouse.is_embedded
                    )
                tables += [
                    f"{database}.{w.name} ({w.rows} rows, {_age(w.age_seconds)} old)"
                    if w.age_seconds is not None
                    else f"{database}.{w.name} ({w.rows} rows, {_age(w.age_seconds)})"
                    for w in work_tables(client, database)
                ]
                loads += [
                    f"{database}.{e.target} <- {e.load_id} ({e.mode}, {e.state}, run "
                    f"{e.run_id}, owner {e.owner}, updated {_age(e.age_seconds)} ago)"
                    for e in unfinished(client, database)
                ]
        metadata: dict[str, JsonValue] = {
            "work_tables": list(tables),
            "unfinished_loads": list(loads),
            "settled": list(finished),
        }
        settled = f"; settled now: {'; '.join(finished)}" if finished else ""
        if not tables and not loads:
            return CheckResult(
                CHECK_LOADS, PASSED, "no staging table and no unfinished load" + settled, metadata
            )
        parts = []
        if tables:
            parts.append(f"{len(tables)} staging table(s): {'; '.join(tables)}")
        if loads:
            parts.append(f"{len(loads)} unfinished load(s): {'; '.join(loads)}")
        return CheckResult(
            CHECK_LOADS,
            WARNING,
            "; ".join(parts) + settled,
            metadata,
            "a load running now is listed too; a dead one is undone by the next load of its "
            "table once its owner is gone (or its 5-minute lease ran out): resume its run "
            "(./run.sh resume RUN_ID) or run the pipeline again",
        )

    return timed(CHECK_LOADS, body)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown age"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# Metabase


def check_metabase(metabase: Any) -> CheckResult:
    """Metabase reachable (``GET /api/health``) and authenticated (``GET /api/user/current``).

    Skipped, with the reason, when ``METABASE_BASE_URL`` is empty.

    Args:
        metabase: A ``MetabaseResource`` (or ``None`` when the code location has none).
    """
    if metabase is None:
        return CheckResult(CHECK_METABASE, SKIPPED, "no metabase resource in this code location")
    base_url = metabase.resolved_base_url()
    if not base_url:
        return CheckResult(
            CHECK_METABASE,
            SKIPPED,
            "Metabase is not configured (METABASE_BASE_URL is empty)",
            metadata={"reason": "METABASE_BASE_URL is empty"},
            fix="set METABASE_BASE_URL and METABASE_API_KEY (or METABASE_USERNAME and "
            "METABASE_PASSWORD) to check Metabase",
        )

    def body() -> CheckResult:
        with metabase.get_client() as client:
            health = str(client.get_json("/api/health").get("status", "?"))
            user = client.get_json("/api/user/current")
            auth = client.auth_method
        who = user.get("email") or user.get("common_name") or f"user {user.get('id')}"
        return CheckResult(
            CHECK_METABASE,
            PASSED,
            f"{metabase.describe()} is {health}; authenticated as {who} ({auth})",
            metadata={
                "where": metabase.describe(),
                "health": health,
                "auth_method": str(auth),
                "user": str(who),
                "superuser": bool(user.get("is_superuser", False)),
            },
        )

    return when_failed(
        timed(CHECK_METABASE, body),
        metabase.describe(),
        "check METABASE_BASE_URL, the API key or login, and that Metabase is up",
    )


# Migrations and tables


def _manager(clickhouse: ClickHouseConnection, folder: Path | None) -> ClickHouseMigrationManager:
    return ClickHouseMigrationManager(clickhouse, folder=folder, log=lambda _message: None)


def check_migrations(clickhouse: ClickHouseConnection, folder: Path | None = None) -> CheckResult:
    """Migrations up to date and unmodified: none pending, failed, edited or without its file."""

    def body() -> CheckResult:
        status = _manager(clickhouse, folder).get_migration_status()
        pending = status.pending_files
        problems = []
        if pending:
            problems.append(f"pending: {', '.join(pending)}")
        if status.failed:
            labels = [f"{f.label} ({f.status})" for f in status.failed]
            problems.append(f"failed: {', '.join(labels)}")
        if status.checksum_mismatches:
            problems.append(f"edited after applying: {', '.join(status.checksum_mismatches)}")
        if status.missing_files:
            problems.append(f"applied but no file: {', '.join(status.missing_files)}")
        metadata: dict[str, JsonValue] = {
            "current_version": status.current_version or 0,
            "latest_version": status.latest_version or 0,
            "executed_count": status.executed_count,
            "pending_count": status.pending_count,
            "failed_count": status.failed_count,
            "checksum_mismatches": list(status.checksum_mismatches),
            "missing_files": list(status.missing_files),
        }
        if problems:
            fix = (
                "apply them with ./run.sh migrate (or the `migrate` job)"
                if pending and len(problems) == 1
                else "see ./run.sh migrate_status; repair failed migrations, restore edited or "
                "missing files from version control, then ./run.sh migrate"
            )
            return CheckResult(CHECK_MIGRATIONS, FAILED, "; ".join(problems), metadata, fix)
        return CheckResult(
            CHECK_MIGRATIONS,
            PASSED,
            f"{status.executed_count} migration(s) applied, up to version "
            f"{status.current_version or 0}; none pending, failed or edited",
            metadata,
        )

    return timed(CHECK_MIGRATIONS, body)


# All checks


def run_all_checks(
    *,
    clickhouse: ClickHouseConnection | HasConnection,
    metabase: Any,
    pipelines: Sequence[Any],
    migrations_folder: Path | None = None,
) -> list[CheckResult]:
    """Run every check, in order.

    Args:
        clickhouse: The ClickHouse connection (or resource).
        metabase: The Metabase resource.
        pipelines: Pipelines whose tables to check.
        migrations_folder: Migrations folder (default: the project's).
    """
    connection = as_connection(clickhouse)
    results = [
        check_clickhouse(connection),
        check_metabase(metabase),
        check_migrations(connection, migrations_folder),
        check_unfinished_loads(connection),
    ]
    results += check_pipeline_tables(connection, pipelines, migrations_folder)
    return results


def format_report(results: Sequence[CheckResult]) -> str:
    """The text report: one line per check and a totals line."""
    lines = [r.line() for r in results]
    counts = {s: sum(r.status == s for r in results) for s in (PASSED, FAILED, WARNING, SKIPPED)}
    lines.append(
        f"{len(results)} checks: {counts[PASSED]} passed, {counts[FAILED]} failed, "
        f"{counts[WARNING]} warning(s), {counts[SKIPPED]} skipped"
    )
    return "\n".join(lines)
