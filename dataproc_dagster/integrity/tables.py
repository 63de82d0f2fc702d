"""The target-table checks: every pipeline's tables present with the expected columns."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from dataproc_dagster.clickhouse.connection import ClickHouseConnection
from dataproc_dagster.clickhouse.sql import quote_identifier
from dataproc_dagster.integrity.results import (
    CheckResult,
    CheckStatus,
    JsonValue,
    TableState,
    timed,
)
from dataproc_dagster.migrations.runner import ClickHouseMigrationManager
from dataproc_dagster.migrations.schema import schema_problems

PASSED, FAILED, WARNING, SKIPPED = CheckStatus


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
            timed(
                table_check_name(pipeline.name),
                partial(_pipeline_tables, clickhouse, pipeline, expected),
            )
        )
    return results


def _expected_tables(
    clickhouse: ClickHouseConnection, folder: Path | None
) -> dict[str, dict[str, str] | None]:
    """Tables and typed columns the applied migrations create (``db.table`` -> columns)."""
    return ClickHouseMigrationManager(
        clickhouse, folder=folder, log=lambda _message: None
    ).expected_schema()


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
        keys_not_merged_yet=_duplicate_keys(client, database, bare, final=False) if columns else 0,
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
    unmerged = {s.table: s.keys_not_merged_yet for s in states if s.keys_not_merged_yet}
    if unmerged:  # information: FINAL reads each key once; OPTIMIZE ... FINAL merges now
        metadata["keys_not_merged_yet"] = dict(unmerged)
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
            "keys present more than once even read with FINAL: "
            + ", ".join(f"{t} ({n} keys)" for t, n in repeated.items()),
            {**metadata, "keys_present_more_than_once": dict(repeated)},
            "the table's sorting key is not the pipeline's key: recreate it with ORDER BY the "
            "key columns (a migration), then load again",
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


def _duplicate_keys(client: Any, database: str, table: str, *, final: bool = True) -> int:
    """How many sorting keys of a ReplacingMergeTree (upsert) table have more than one row.

    With ``final`` (what a reader sees): a finding. Without: versions of a key that ClickHouse
    has not merged yet, which is normal between loads and merges.
    """
    rows = client.query(
        "SELECT engine, sorting_key FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        parameters={"db": database, "t": table},
    ).result_rows
    if not rows or not str(rows[0][0]).endswith("ReplacingMergeTree") or not rows[0][1]:
        return 0
    qualified = f"{quote_identifier(database)}.{quote_identifier(table)}"
    source = f"{qualified} FINAL" if final else qualified
    counted = client.query(
        f"SELECT countIf(c > 1) FROM (SELECT count() AS c FROM {source} GROUP BY {rows[0][1]})"
    ).result_rows
    return int(counted[0][0]) if counted else 0
