"""The ClickHouse schema as a Dagster asset, its checks, and the migration jobs.

- ``clickhouse/schema``: materializing it applies the pending migration files.
- Its asset checks report the schema's state, with the status figures as metadata.
- Jobs: ``migrate`` (apply, then check), ``migration_checks`` (checks only: read-only, safe to
  schedule in production) and ``migrate_rollback`` (``count`` in run config).

All of them run in the concurrency pool ``clickhouse_migrations``; give it a limit of 1 on the
instance so that two runs never migrate one server at once.
"""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    Config,
    DagsterInstance,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    ScheduleDefinition,
    asset,
    define_asset_job,
    job,
    multi_asset_check,
    op,
)
from pydantic import Field

from dataproc_dagster.migrations.errors import MigrationFileError
from dataproc_dagster.migrations.runner import ClickHouseMigrationManager
from dataproc_dagster.migrations.status import CommandResult, MigrationStatus

SCHEMA_KEY = AssetKey(["clickhouse", "schema"])
MIGRATIONS_POOL = "clickhouse_migrations"

CHECK_NO_PENDING = "no_pending_migrations"
CHECK_NO_FAILED = "no_failed_migrations"
CHECK_CHECKSUMS = "no_checksum_mismatch"
CHECK_NO_MISSING = "no_missing_migration_files"
CHECK_TABLES = "tables_match_migrations"

_CHECK_SPECS = [
    AssetCheckSpec(
        CHECK_NO_PENDING, asset=SCHEMA_KEY, description="Every migration file is applied."
    ),
    AssetCheckSpec(
        CHECK_NO_FAILED,
        asset=SCHEMA_KEY,
        description="No migration is failed or interrupted (dirty); repair it if so.",
    ),
    AssetCheckSpec(
        CHECK_CHECKSUMS,
        asset=SCHEMA_KEY,
        description="No applied migration file was edited after it ran.",
    ),
    AssetCheckSpec(
        CHECK_NO_MISSING,
        asset=SCHEMA_KEY,
        description="Every applied version still has its file in the migrations folder.",
    ),
    AssetCheckSpec(
        CHECK_TABLES,
        asset=SCHEMA_KEY,
        description="The tables the applied migrations create exist with the expected columns.",
    ),
]


def _manager(context: Any) -> ClickHouseMigrationManager:
    run = getattr(context, "run", None)  # op and asset check contexts both have .run
    return ClickHouseMigrationManager(
        context.resources.clickhouse, log=context.log.info, run_id=getattr(run, "run_id", "")
    )


def _figures(status: MigrationStatus) -> dict[str, Any]:
    """The status figures shown with the asset and every check."""
    return {
        "executed_count": status.executed_count,
        "pending_count": status.pending_count,
        "failed_count": status.failed_count,
        "current_version": MetadataValue.int(status.current_version or 0),
        "latest_version": MetadataValue.int(status.latest_version or 0),
        "migrations": MetadataValue.md(_status_table(status)),
    }


def _status_table(status: MigrationStatus) -> str:
    lines = ["| version | file | status | applied at | ms |", "|---|---|---|---|---|"]
    for row in status.migrations:
        state = row.status if row.checksum_ok else f"{row.status} (edited)"
        lines.append(
            f"| {row.version} | {row.file} | {state} | {row.applied_at or ''} "
            f"| {row.duration_ms if row.duration_ms is not None else ''} |"
        )
    return "\n".join(lines)


@asset(
    key=SCHEMA_KEY,
    group_name="clickhouse",
    description="The ClickHouse schema, as the files in migrations/ define it. Materializing "
    "applies the pending migrations.",
    required_resource_keys={"clickhouse"},
    pool=MIGRATIONS_POOL,
    kinds={"clickhouse"},
)
def clickhouse_schema(context: AssetExecutionContext) -> MaterializeResult:
    """Apply the pending migrations."""
    result = _manager(context).apply()
    metadata = _figures(result.status)
    metadata["applied_now"] = MetadataValue.json(list(result.done))
    return MaterializeResult(metadata=metadata)


@multi_asset_check(
    specs=_CHECK_SPECS,
    required_resource_keys={"clickhouse"},
    pool=MIGRATIONS_POOL,
    name="clickhouse_schema_checks",
)
def clickhouse_schema_checks(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
    """Report the schema's state; reads only, never changes anything."""
    yield from schema_check_results(_manager(context))


def schema_check_results(manager: ClickHouseMigrationManager) -> list[AssetCheckResult]:
    """The five ``clickhouse/schema`` check results, read from ``manager`` (reads only)."""
    try:
        status = manager.get_migration_status()
        schema = manager.check_schema()
    except MigrationFileError as exc:
        return [
            AssetCheckResult(
                check_name=spec.name,
                asset_key=SCHEMA_KEY,
                passed=False,
                severity=AssetCheckSeverity.ERROR,
                metadata={"error": MetadataValue.text(str(exc))},
            )
            for spec in _CHECK_SPECS
        ]
    figures = _figures(status)
    pending = status.pending_files
    failed = status.failed
    edited = list(status.checksum_mismatches)
    missing = list(status.missing_files)
    problems = list(schema.problems)
    return [
        AssetCheckResult(
            check_name=CHECK_NO_PENDING,
            asset_key=SCHEMA_KEY,
            passed=not pending,
            severity=AssetCheckSeverity.WARN,
            metadata={**figures, "pending": MetadataValue.json(pending)},
            description=f"pending: {', '.join(pending)}" if pending else "all migrations applied",
        ),
        AssetCheckResult(
            check_name=CHECK_NO_FAILED,
            asset_key=SCHEMA_KEY,
            passed=not failed,
            metadata={**figures, "failed": MetadataValue.json([f.to_dict() for f in failed])},
            description=("; ".join(f.describe() for f in failed) or "no failed migration"),
        ),
        AssetCheckResult(
            check_name=CHECK_CHECKSUMS,
            asset_key=SCHEMA_KEY,
            passed=not edited,
            metadata={**figures, "edited_files": MetadataValue.json(edited)},
            description=f"edited after applying: {', '.join(edited)}"
            if edited
            else "checksums match",
        ),
        AssetCheckResult(
            check_name=CHECK_NO_MISSING,
            asset_key=SCHEMA_KEY,
            passed=not missing,
            metadata={**figures, "missing_files": MetadataValue.json(missing)},
            description=f"no file for {', '.join(missing)}" if missing else "every file present",
        ),
        AssetCheckResult(
            check_name=CHECK_TABLES,
            asset_key=SCHEMA_KEY,
            passed=not problems,
            metadata={
                **figures,
                "tables": MetadataValue.json(schema.tables),
                "problems": MetadataValue.json(problems),
            },
            description="; ".join(problems) or f"{len(schema.tables)} table(s) as expected",
        ),
    ]


def report_schema_runless(
    instance: DagsterInstance,
    manager: ClickHouseMigrationManager,
    result: CommandResult | None = None,
) -> list[AssetCheckEvaluation]:
    """Record in ``instance`` what the migrations command line did, as the ``migrate`` job would:

    a materialization of ``clickhouse/schema`` (when ``result`` comes from applying or rolling
    back migrations) and the evaluations of its five checks. Returns the evaluations.
    """
    if result is not None:
        metadata = _figures(result.status)
        if result.command in ("up", "down"):
            metadata[f"{result.verb}_now"] = MetadataValue.json(list(result.done))
        instance.report_runless_asset_event(
            AssetMaterialization(
                asset_key=SCHEMA_KEY,
                description="migrations applied from the command line",
                metadata=metadata,
            )
        )
    evaluations = [
        AssetCheckEvaluation(
            asset_key=SCHEMA_KEY,
            check_name=check.check_name or "",
            passed=check.passed,
            metadata=check.metadata,
            severity=check.severity,
            description=check.description,
        )
        for check in schema_check_results(manager)
    ]
    for evaluation in evaluations:
        instance.report_runless_asset_event(evaluation)
    return evaluations


class RollbackConfig(Config):
    """Run config of ``migrate_rollback``."""

    count: int = Field(ge=1, description="How many of the last applied migrations to roll back")


@op(
    name="rollback_migrations",
    required_resource_keys={"clickhouse"},
    pool=MIGRATIONS_POOL,
    tags={"kind": "clickhouse"},
)
def rollback_migrations_op(context: OpExecutionContext, config: RollbackConfig) -> dict[str, Any]:
    """Roll the last ``count`` migrations back with their down files."""
    result = _manager(context).rollback_migrations(config.count)
    metadata = _figures(result.status)
    metadata["rolled_back"] = MetadataValue.json(list(result.done))
    context.log_event(
        AssetMaterialization(
            asset_key=SCHEMA_KEY,
            description=f"rolled back {', '.join(result.done)}",
            metadata=metadata,
        )
    )
    return {"rolled_back": list(result.done)}


@job(
    name="migrate_rollback",
    description="Roll back the last `count` migrations (run config: "
    "ops.rollback_migrations.config.count).",
    tags={"dataproc/kind": "migrations"},
)
def migrate_rollback() -> None:
    """Roll back migrations."""
    rollback_migrations_op()


migrate = define_asset_job(
    "migrate",
    selection=AssetSelection.assets(SCHEMA_KEY),
    description="Apply the pending ClickHouse migrations, then run the schema checks.",
    tags={"dataproc/kind": "migrations"},
)
migration_checks = define_asset_job(
    "migration_checks",
    selection=AssetSelection.checks_for_assets(SCHEMA_KEY),
    description="Run the ClickHouse schema checks only (reads, changes nothing).",
    tags={"dataproc/kind": "migrations"},
)

# On by default (a few small read-only queries an hour), so the schema checks stay evaluated.
migration_checks_schedule = ScheduleDefinition(
    name="migration_checks_hourly",
    job=migration_checks,
    cron_schedule="17 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Run the ClickHouse schema checks every hour (read-only).",
)

ASSETS = [clickhouse_schema]
ASSET_CHECKS = [clickhouse_schema_checks]
JOBS = [migrate, migration_checks, migrate_rollback]
SCHEDULES = [migration_checks_schedule]
