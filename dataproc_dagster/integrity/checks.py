"""Integrity checks: the ``./run.sh check`` and deploy-time checks, as a library.

Each check returns a :class:`CheckResult` (passed, failed, warning or skipped, with metadata
for the Dagster UI). The job ``integrity_check`` (``dataproc_dagster/integrity/job.py``) runs
them as asset checks; ``python -m dataproc_dagster.cli.integrity`` (``./run.sh check``)
prints them and exits 1 when one fails. Checks open one connection at a time and close it,
so they work on the embedded engine, and never print a secret.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from dataproc_dagster.clickhouse.connection import (
    ClickHouseConnection,
    HasConnection,
    as_connection,
)
from dataproc_dagster.clickhouse.sql import quote_identifier
from dataproc_dagster.core.errors import DataprocError
from dataproc_dagster.integrity.results import CheckResult, CheckStatus, JsonValue, TableState
from dataproc_dagster.loading.ledger import LEDGER_TABLE, unfinished, work_tables
from dataproc_dagster.migrations.runner import ClickHouseMigrationManager
from dataproc_dagster.migrations.schema import schema_problems

CHECK_CLICKHOUSE = "clickhouse_reachable"
CHECK_METABASE = "metabase_reachable"
CHECK_MIGRATIONS = "migrations_up_to_date"
CHECK_LOADS = "no_unfinished_loads"

PASSED, FAILED, WARNING, SKIPPED = CheckStatus  # short names for the results below


def _timed(name: str, body: Callable[[], CheckResult]) -> CheckResult:
    """Run ``body``; any error becomes a failed result that keeps the error's own fix."""
    started = time.perf_counter()
    try:
        result = body()
    except DataprocError as exc:
        result = CheckResult(name, FAILED, exc.message, fix=exc.fix or "", metadata=_where(exc))
    except Exception as exc:
        result = CheckResult(name, FAILED, f"{type(exc).__name__}: {_first_line(exc)}")
    seconds = time.perf_counter() - started
    return dataclasses.replace(
        result, seconds=seconds, metadata={"seconds": round(seconds, 3), **result.metadata}
    )


def _when_failed(result: CheckResult, where: str, fix: str) -> CheckResult:
    """A failed result that says where it looked and, unless its error gave one, the fix."""
    if not result.failed:
        return result
    return dataclasses.replace(
        result, metadata={"where": where, **result.metadata}, fix=result.fix or fix
    )


def _where(exc: DataprocError) -> dict[str, JsonValue]:
    return {"source": exc.source} if exc.source else {}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else ""


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

    result = _timed(CHECK_CLICKHOUSE, body)
    return _when_failed(
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
    """Staging and shadow tables (with age and rows) and ledger entries of unfinished loads.

    A warning, not a failure: the target tables are consistent, and the next load of each table
    settles what a dead load left (docs/loading.md).
    """

    def body() -> CheckResult:
        tables: list[str] = []
        loads: list[str] = []
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
                tables += [
                    f"{database}.{name} ({rows} rows, {_age(age)} old)"
                    if age is not None
                    else f"{database}.{name} ({rows} rows, {_age(age)})"
                    for name, age, rows in work_tables(client, database)
                ]
                loads += [
                    f"{database}.{e.target} <- {e.dataset_id} ({e.mode}, {e.state}, run "
                    f"{e.run_id}, owner {e.owner}, updated {_age(e.age_seconds)} ago)"
                    for e in unfinished(client, database)
                ]
        metadata: dict[str, JsonValue] = {
            "work_tables": list(tables),
            "unfinished_loads": list(loads),
        }
        if not tables and not loads:
            return CheckResult(
                CHECK_LOADS, PASSED, "no staging table and no unfinished load", metadata
            )
        parts = []
        if tables:
            parts.append(f"{len(tables)} staging/shadow table(s): {'; '.join(tables)}")
        if loads:
            parts.append(f"{len(loads)} unfinished load(s): {'; '.join(loads)}")
        return CheckResult(
            CHECK_LOADS,
            WARNING,
            "; ".join(parts),
            metadata,
            "a load running now is listed too; a dead one is settled by the next load of its "
            "table: resume its run (./run.sh resume RUN_ID) or run the pipeline again",
        )

    return _timed(CHECK_LOADS, body)


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

    return _when_failed(
        _timed(CHECK_METABASE, body),
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

    return _timed(CHECK_MIGRATIONS, body)


def table_check_name(pipeline: str) -> str:
    """The name of a pipeline's target-table check."""
    return f"pipeline_tables_{pipeline}"


def check_pipeline_tables(
    clickhouse: ClickHouseConnection,
    pipelines: Iterable[Any],
    folder: Path | None = None,
) -> list[CheckResult]:
    """Every pipeline's target tables present, with the columns the migrations define.

    A table the migrations create must exist with their columns and types (else failed). A
    table only the pipeline creates (its loader or a SQL step, on the first run) is a warning
    while it does not exist yet.

    Args:
        clickhouse: The ClickHouse resource.
        pipelines: ``Pipeline`` objects (``registry.discover_pipelines()``).
        folder: Migrations folder (default: the project's).
    """
    pipelines = [p for p in pipelines if p.targets]
    if not pipelines:
        return []
    try:
        expected = _expected_tables(clickhouse, folder)
    except Exception:  # reported by check_migrations; compare presence only
        expected = {}
    results = []
    for pipeline in pipelines:
        results.append(
            _timed(
                table_check_name(pipeline.name),
                partial(_pipeline_tables, clickhouse, pipeline, expected),
            )
        )
    return results


def _expected_tables(
    clickhouse: ClickHouseConnection, folder: Path | None
) -> dict[str, dict[str, str] | None]:
    """Tables and typed columns the applied migrations create (``db.table`` -> columns)."""
    return _manager(clickhouse, folder).expected_schema()


def _pipeline_tables(
    clickhouse: ClickHouseConnection, pipeline: Any, expected: dict[str, dict[str, str] | None]
) -> CheckResult:
    default_db = clickhouse.database or "default"
    tables = [t if "." in t else f"{default_db}.{t}" for t in pipeline.targets]
    with clickhouse.get_client(step="integrity_check") as client:
        states = tuple(_table_state(client, table, expected) for table in tables)
    return _tables_result(table_check_name(pipeline.name), pipeline.name, states)


def _table_state(client: Any, table: str, expected: dict[str, dict[str, str] | None]) -> TableState:
    """What ``db.table`` looks like, compared with the migrations when they create it."""
    database, bare = table.split(".", 1)
    columns = tuple(
        f"{n} {t}"
        for n, t in client.query(
            "SELECT name, type FROM system.columns WHERE database = %(db)s AND "
            "table = %(t)s ORDER BY position",
            parameters={"db": database, "t": bare},
        ).result_rows
    )
    managed = table in expected
    return TableState(
        table=table,
        columns=columns,
        managed_by_migrations=managed,
        problems=tuple(schema_problems(client, {table: expected[table]})) if managed else (),
        keys_present_more_than_once=_duplicate_keys(client, database, bare) if columns else 0,
    )


def _tables_result(name: str, pipeline: str, states: tuple[TableState, ...]) -> CheckResult:
    """The check result of a pipeline's tables: failed on any problem, else warnings."""
    tables = [s.table for s in states]
    found: dict[str, JsonValue] = {s.table: list(s.columns) for s in states if s.created}
    problems = [str(p) for s in states for p in s.problems]
    not_created = [s.table for s in states if s.not_created_yet]
    repeated = {
        s.table: s.keys_present_more_than_once for s in states if s.keys_present_more_than_once
    }
    metadata: dict[str, JsonValue] = {
        "pipeline": pipeline,
        "tables": list(tables),
        "columns": found,
        "managed_by_migrations": [s.table for s in states if s.managed_by_migrations],
    }
    if problems:
        return CheckResult(
            name,
            FAILED,
            "; ".join(problems),
            {**metadata, "problems": list(problems)},
            "apply pending migrations (./run.sh migrate), or add a migration that gives the "
            "table the columns the pipeline loads",
            tables=states,
        )
    if repeated:
        return CheckResult(
            name,
            WARNING,
            "keys present more than once (upsert tables not merged yet): "
            + ", ".join(f"{t} ({n} keys)" for t, n in repeated.items())
            + "; a plain SELECT counts them more than once",
            {**metadata, "keys_present_more_than_once": dict(repeated)},
            "read upsert tables with FINAL (SELECT ... FROM table FINAL, or SETTINGS final = 1); "
            "SQL steps and show_table already do; OPTIMIZE TABLE ... FINAL merges them now",
            tables=states,
        )
    if not_created:
        return CheckResult(
            name,
            WARNING,
            f"not created yet: {', '.join(not_created)} (the pipeline creates "
            f"{'it' if len(not_created) == 1 else 'them'} on its first run)",
            {**metadata, "not_created": list(not_created)},
            f"run the job {pipeline} once, or create the table in a migration",
            tables=states,
        )
    return CheckResult(
        name,
        PASSED,
        ", ".join(f"{s.table} ({len(s.columns)} columns)" for s in states) + " present as expected",
        metadata,
        tables=states,
    )


def _duplicate_keys(client: Any, database: str, table: str) -> int:
    """How many sorting keys of a ReplacingMergeTree (upsert) table have more than one row."""
    rows = client.query(
        "SELECT engine, sorting_key FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        parameters={"db": database, "t": table},
    ).result_rows
    if not rows or not str(rows[0][0]).endswith("ReplacingMergeTree") or not rows[0][1]:
        return 0
    qualified = f"{quote_identifier(database)}.{quote_identifier(table)}"
    counted = client.query(
        f"SELECT countIf(c > 1) FROM (SELECT count() AS c FROM {qualified} GROUP BY {rows[0][1]})"
    ).result_rows
    return int(counted[0][0]) if counted else 0


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
