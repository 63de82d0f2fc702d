"""The ``integrity_check`` job: each integrity check as its own Dagster asset check.

Checked assets (external: this job only observes them):

- ``clickhouse/server``: checks ``clickhouse_reachable``, ``migrations_up_to_date`` and
  ``no_unfinished_loads`` (staging tables and ledger entries of loads that did not finish);
- ``metabase/server``: check ``metabase_reachable`` (passes as skipped, with the reason, when
  ``METABASE_BASE_URL`` is empty);
- ``clickhouse/<database>/<table>`` for every pipeline's target table (the key the loaders
  materialize): check ``target_table``.

All results are reported first; then the step fails, naming the failed checks, so that a failed
integrity check is a failed run (red in the UI, alertable). Warnings (a table the pipeline
creates on its first run) do not fail it. ``./run.sh check`` runs the same checks without Dagster.
"""

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetSelection,
    AssetSpec,
    Failure,
    MetadataValue,
    define_asset_job,
    multi_asset_check,
)

from dataproc_dagster.components.discovery import discover_yaml_pipelines
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.integrity import checks as integrity
from dataproc_dagster.integrity import tables as table_checks
from dataproc_dagster.integrity.results import CheckResult, CheckStatus, JsonValue
from dataproc_dagster.pipeline.registry import discover_pipelines
from dataproc_dagster.pipeline.schedules import build_schedule
from dataproc_dagster.pipeline.steps import CLICKHOUSE_POOL

JOB_NAME = "integrity_check"
CLICKHOUSE_KEY = AssetKey(["clickhouse", "server"])
METABASE_KEY = AssetKey(["metabase", "server"])
TABLE_CHECK = "target_table"


def table_key(qualified: str) -> AssetKey:
    """The asset key of a ClickHouse table ``db.table`` (the one the loaders materialize)."""
    database, table = qualified.split(".", 1)
    return AssetKey(["clickhouse", database, table])


def pipeline_tables(pipelines: Sequence[Any], default_database: str) -> dict[str, list[str]]:
    """``db.table`` -> names of the pipelines writing it."""
    tables: dict[str, list[str]] = defaultdict(list)
    for pipeline in pipelines:
        for target in pipeline.targets:
            qualified = target if "." in target else f"{default_database}.{target}"
            tables[qualified].append(pipeline.name)
    return dict(sorted(tables.items()))


def _check_result(result: CheckResult, key: AssetKey, check_name: str) -> AssetCheckResult:
    severity = AssetCheckSeverity.WARN if result.status == CheckStatus.WARNING else None
    metadata: dict[str, Any] = {
        "status": str(result.status),
        "seconds": round(result.seconds, 3),
    }
    for name, value in result.metadata.items():
        if name == "seconds":
            continue
        if isinstance(value, dict | list):
            metadata[name] = MetadataValue.json(value)
        elif isinstance(value, bool | int | float | str):
            metadata[name] = value
        else:
            metadata[name] = str(value)
    if result.fix and result.status != CheckStatus.PASSED:
        metadata["fix"] = MetadataValue.text(result.fix)
    description = result.summary
    if result.status == CheckStatus.SKIPPED:
        description = f"skipped: {result.summary}"
    return AssetCheckResult(
        asset_key=key,
        check_name=check_name,
        passed=result.status in (CheckStatus.PASSED, CheckStatus.SKIPPED),
        severity=severity or AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=description,
    )


def build_integrity_checks(
    pipelines: Sequence[Any], default_database: str
) -> tuple[list[AssetSpec], Any, Any]:
    """The checked assets, the asset checks and the ``integrity_check`` job for ``pipelines``."""
    tables = pipeline_tables(pipelines, default_database)
    materialized = {key for p in pipelines for key in getattr(p, "asset_keys", [])}
    assets = [
        AssetSpec(
            CLICKHOUSE_KEY,
            description="The ClickHouse the code location reads and writes (CLICKHOUSE_URL).",
            group_name="operations",
            kinds={"clickhouse"},
        ),
        AssetSpec(
            METABASE_KEY,
            description="The Metabase the extractors read from (METABASE_BASE_URL).",
            group_name="operations",
        ),
    ] + [
        # Tables a pipeline's asset materializes are that asset; only the others are external.
        AssetSpec(
            table_key(qualified),
            description=f"ClickHouse table {qualified}, written by {', '.join(writers)}.",
            group_name="clickhouse_tables",
            kinds={"clickhouse"},
            metadata={"dagster/table_name": qualified},
        )
        for qualified, writers in tables.items()
        if table_key(qualified) not in materialized
    ]
    specs = [
        AssetCheckSpec(
            integrity.CHECK_CLICKHOUSE,
            asset=CLICKHOUSE_KEY,
            description="ClickHouse answers: engine, version, database.",
        ),
        AssetCheckSpec(
            integrity.CHECK_MIGRATIONS,
            asset=CLICKHOUSE_KEY,
            description="Every migration applied; none failed, edited or without its file.",
        ),
        AssetCheckSpec(
            integrity.CHECK_LOADS,
            asset=CLICKHOUSE_KEY,
            description="No staging/shadow table and no unfinished load left by a dead process "
            "(a warning: the next load of the table settles them).",
        ),
        AssetCheckSpec(
            integrity.CHECK_METABASE,
            asset=METABASE_KEY,
            description="Metabase answers /api/health and accepts the credentials "
            "(skipped when METABASE_BASE_URL is empty).",
        ),
    ] + [
        AssetCheckSpec(
            TABLE_CHECK,
            asset=table_key(qualified),
            description="The table exists with the columns the migrations define.",
        )
        for qualified in tables
    ]

    # Subsettable: materializing a table from the catalog runs its ``target_table`` check
    # alone, not the server checks.
    @multi_asset_check(
        specs=specs,
        can_subset=True,
        name="integrity_checks",
        required_resource_keys={"clickhouse", "metabase"},
        pool=CLICKHOUSE_POOL,
        description="ClickHouse, Metabase, migrations and every pipeline's target tables.",
    )
    def integrity_checks(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        clickhouse = context.resources.clickhouse.connection
        selected = context.selected_asset_check_keys

        def wanted(key: AssetKey, name: str) -> bool:
            return AssetCheckKey(key, name) in selected

        results = [
            (integrity.check_clickhouse, CLICKHOUSE_KEY, integrity.CHECK_CLICKHOUSE),
            (integrity.check_migrations, CLICKHOUSE_KEY, integrity.CHECK_MIGRATIONS),
            (integrity.check_unfinished_loads, CLICKHOUSE_KEY, integrity.CHECK_LOADS),
            (integrity.check_metabase, METABASE_KEY, integrity.CHECK_METABASE),
        ]
        chosen = {q: w for q, w in tables.items() if wanted(table_key(q), TABLE_CHECK)}
        writing = {w for writers in chosen.values() for w in writers}
        by_name = {
            r.name: r
            for r in table_checks.check_pipeline_tables(
                clickhouse, [p for p in pipelines if p.name in writing]
            )
        }
        failed = []
        for check, key, check_name in results:
            if not wanted(key, check_name):
                continue
            resource = context.resources.metabase if key == METABASE_KEY else clickhouse
            result = check(resource)
            context.log.info(result.line())
            failed += [result.name] if result.failed else []
            yield _check_result(result, key, result.name)
        for qualified, writers in chosen.items():
            table_result = table_result_of(qualified, writers, by_name)
            context.log.info(table_result.line())
            failed += [table_result.name] if table_result.failed else []
            yield _check_result(table_result, table_key(qualified), TABLE_CHECK)
        if failed:
            raise Failure(
                description=f"integrity check failed: {', '.join(failed)} (see each check's "
                "description and fix)",
                metadata={"failed_checks": MetadataValue.json(failed)},
            )

    check_keys = [spec.key for spec in specs]
    job = define_asset_job(
        JOB_NAME,
        selection=AssetSelection.checks(*check_keys),
        description="Integrity checks: ClickHouse reachable, Metabase reachable and "
        "authenticated, migrations up to date, every pipeline's target table as expected. "
        "Also `./run.sh check`.",
        tags={"dataproc/kind": "operations"},
    )
    return assets, integrity_checks, job


def table_result_of(
    qualified: str, writers: list[str], by_name: dict[str, CheckResult]
) -> CheckResult:
    """One table's result, taken from the table states of its pipelines' table checks.

    Args:
        qualified: The table, ``db.table``.
        writers: The pipelines writing it.
        by_name: The pipeline-table check results by check name.
    """
    name = f"{TABLE_CHECK} {qualified}"
    results = [by_name[n] for n in map(table_checks.table_check_name, writers) if n in by_name]
    if not results:
        return CheckResult(name, CheckStatus.FAILED, "the table check did not run")
    state = next((s for r in results if (s := r.table(qualified)) is not None), None)
    metadata: dict[str, JsonValue] = {
        "table": qualified,
        "pipelines": list(writers),
        "columns": list(state.columns) if state else [],
        "managed_by_migrations": state.managed_by_migrations if state else False,
    }
    if state is None:  # the checks failed before they looked at the table (e.g. no ClickHouse)
        errors = "; ".join(r.summary for r in results if r.failed)
        return CheckResult(name, CheckStatus.FAILED, errors, metadata, results[0].fix)
    if state.problems:
        return CheckResult(
            name,
            CheckStatus.FAILED,
            "; ".join(str(p) for p in state.problems),
            metadata,
            results[0].fix,
            tables=(state,),
        )
    if state.not_created_yet:
        return CheckResult(
            name,
            CheckStatus.WARNING,
            f"{qualified} not created yet; {', '.join(writers)} creates it on its first run",
            metadata,
            f"run the job {writers[0]} once, or create the table in a migration",
            tables=(state,),
        )
    return CheckResult(
        name,
        CheckStatus.PASSED,
        f"{qualified} present with {len(state.columns)} columns",
        metadata,
        tables=(state,),
    )


ASSETS, _CHECKS, INTEGRITY_JOB = build_integrity_checks(
    [*discover_pipelines(), *discover_yaml_pipelines()], get_settings().clickhouse_database
)
ASSET_CHECKS = [_CHECKS]
JOBS = [INTEGRITY_JOB]
# Hourly in production once turned on (UI: Automation, or `dagster schedule start`); like the
# pipelines' schedules, it skips a tick while the previous check is still queued or running.
INTEGRITY_SCHEDULE = build_schedule(
    INTEGRITY_JOB,
    "5 * * * *",
    "UTC",
    name="integrity_check_schedule",
)
SCHEDULES = [INTEGRITY_SCHEDULE]
