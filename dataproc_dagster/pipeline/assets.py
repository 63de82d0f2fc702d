"""Pipelines as Dagster assets: asset keys, lineage, and the checks that run with every load.

A pipeline with a ClickHouse target becomes:

- an external asset for its source (``http/<host>/<path>``, ``metabase/<database>/<table>``,
  ``clickhouse/<database>/<table>``, ``file/<name>``);
- a graph-backed asset ``clickhouse/<database>/<table>`` whose graph is the pipeline's
  extract -> transform* -> load ops;
- one asset per SQL step, keyed by its table, downstream of the tables its ``SELECT`` reads;
- asset checks on each table, executed in the same run: ``rows_loaded``, ``columns_match``
  (blocking), ``unique_keys`` (blocking, upsert tables) and, with a schedule, ``freshness_check``.
"""

import inspect
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetIn,
    AssetKey,
    AssetOut,
    AssetRecordsFilter,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    BetaWarning,
    EventLogRecord,
    IOManagerDefinition,
    MetadataValue,
    Nothing,
    PartitionsDefinition,
    PreviewWarning,
    SupersessionWarning,
    build_last_update_freshness_checks,
    graph_multi_asset,
    multi_asset_check,
)

# Dagster's cron iterator (with its DST rules): no public equivalent gives a schedule's ticks.
from dagster._utils.schedules import cron_string_iterator

from dataproc_dagster.clickhouse.sql import qualified_name, quote_identifier
from dataproc_dagster.core.modes import DriftPolicy
from dataproc_dagster.migrations.runner import ClickHouseMigrationManager
from dataproc_dagster.migrations.schema import schema_differences
from dataproc_dagster.pipeline.partitions import RESULT_IO_MANAGER, LoadSummaryIOManager
from dataproc_dagster.pipeline.steps import CLICKHOUSE_POOL
from dataproc_dagster.pipeline.window import PartitionWindow, window_of

CHECK_ROWS = "rows_loaded"
CHECK_COLUMNS = "columns_match"
CHECK_KEYS = "unique_keys"
CHECK_FRESHNESS = "freshness_check"
SOURCE_KINDS = {"http", "metabase", "clickhouse", "file"}
# Tables named after FROM / JOIN; a name followed by "(" is a table function, not a table.
_TABLE_REF = re.compile(
    r"\b(?:FROM|JOIN)\s+((?:`[^`]+`|\"[^\"]+\"|[A-Za-z_]\w*)(?:\.(?:`[^`]+`|\"[^\"]+\"|[A-Za-z_]\w*))?)"
    r"(?!\s*\()",
    re.IGNORECASE,
)
_KEY_PART = re.compile(r"[^A-Za-z0-9_.\-]+")


def table_key(qualified: str, default_database: str = "default") -> AssetKey:
    """The asset key of ClickHouse table ``db.table`` (or ``table`` in ``default_database``)."""
    database, table = qualified.split(".", 1) if "." in qualified else (default_database, qualified)
    return AssetKey(["clickhouse", database, table])


def tables_read(select: str, default_database: str) -> list[str]:
    """The tables (``db.table``) a ``SELECT`` reads, in order of appearance, without duplicates.

    ``system`` tables and table functions are left out; names of CTEs are not tables either.
    """
    ctes = {m.lower() for m in re.findall(r"\b(\w+)\s+AS\s*\(", select, flags=re.IGNORECASE)}
    found: list[str] = []
    for match in _TABLE_REF.finditer(select):
        parts = [p.strip('`"') for p in match.group(1).split(".", 1)]
        if len(parts) == 1 and parts[0].lower() in ctes:
            continue
        qualified = ".".join(parts) if len(parts) == 2 else f"{default_database}.{parts[0]}"
        if qualified.split(".", 1)[0].lower() in ("system", "information_schema"):
            continue
        if qualified not in found:
            found.append(qualified)
    return found


def _part(text: Any) -> str:
    return _KEY_PART.sub("_", str(text)).strip("_") or "_"


def source_keys(extractor: Any, default_database: str) -> list[AssetKey]:
    """Asset keys of where an extractor reads; empty when only run config says (generic jobs)."""
    kind = getattr(extractor, "kind", "custom")
    if kind == "file" and getattr(extractor, "path", None):
        return [AssetKey(["file", _part(PurePosixPath(str(extractor.path)).name)])]
    if kind == "http":
        spec = getattr(extractor, "spec", None)
        if spec is None:
            return []
        parts = urlsplit(spec.url)
        # Host and path only: a port (a test server's, a moved API's) is no other source.
        host = parts.hostname or spec.resource_key or "http"
        path = [_part(p) for p in parts.path.split("/") if p]
        return [AssetKey(["http", _part(host), *path])]
    if kind == "metabase":
        if getattr(extractor, "from_config", False):
            return []
        database = extractor.database_name or (
            f"database_{extractor.database_id}" if extractor.database_id is not None else "metabase"
        )
        if extractor.native_query:
            table = "native_query"
        elif extractor.table_name:
            table = ".".join(p for p in (extractor.schema, extractor.table_name) if p)
        else:
            table = f"table_{extractor.table_id}"
        return [AssetKey(["metabase", _part(database), _part(table)])]
    if kind == "clickhouse" and getattr(extractor, "query", None):
        database = extractor.database or default_database
        return [table_key(t) for t in tables_read(extractor.query, database)]
    name = getattr(extractor, "name", None)
    return [AssetKey(["custom", _part(name)])] if name else []


@dataclass(frozen=True)
class TableAsset:
    """What the checks of one table need to know."""

    key: AssetKey
    database: str
    table: str
    loaded: bool  # written by the pipeline's load step (not a SQL step)
    key_columns: tuple[str, ...] = ()
    allow_empty: bool = False
    schema_drift: DriftPolicy = DriftPolicy.FREEZE
    # Partitioned pipelines: checks run per partition, over the rows of its window.
    partitions: PartitionsDefinition | None = None
    time_column: str | None = None


def graph_asset_for(
    name: str,
    body: Callable[[list[Any]], Any],
    spec: AssetSpec,
    sources: Sequence[AssetKey],
    *,
    partitions_def: PartitionsDefinition | None = None,
    backfill_policy: BackfillPolicy | None = None,
) -> AssetsDefinition:
    """The graph-backed asset of a pipeline.

    ``body(sources)`` composes the pipeline's ops (extract -> transform* -> load) and returns
    the load's output, which materializes ``spec.key``; the ``sources`` are the extract op's
    ``source`` input, so the source assets are upstream of the table in the lineage.
    """
    ins = {
        f"source_{index}": AssetIn(key=key, dagster_type=Nothing)
        for index, key in enumerate(sources)
    }

    def compose(**upstream: Any) -> Any:
        return body(list(upstream.values()))

    compose.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in ins]
    )
    # Partitioned: the load summary goes to an IO manager that keeps nothing (see partitions).
    io_manager = (
        {RESULT_IO_MANAGER: IOManagerDefinition.hardcoded_io_manager(LoadSummaryIOManager())}
        if partitions_def
        else {}
    )
    with warnings.catch_warnings():
        # resource_defs on an asset is a Dagster beta; it only carries the summary's IO manager.
        warnings.simplefilter("ignore", BetaWarning)
        return graph_multi_asset(
            name=name,
            ins=ins,
            resource_defs=io_manager or None,
            partitions_def=partitions_def,
            backfill_policy=backfill_policy,
            group_name=spec.group_name,
            outs={
                "result": AssetOut(
                    key=spec.key,
                    description=spec.description,
                    owners=list(spec.owners),
                    kinds=set(spec.kinds),
                    metadata=dict(spec.metadata),
                    tags={k: v for k, v in spec.tags.items() if not k.startswith("dagster/kind/")},
                )
            },
        )(compose)


def table_checks(pipeline: str, table: TableAsset) -> AssetChecksDefinition:
    """The checks of one table, executed in every run that materializes it."""
    with warnings.catch_warnings():
        # Partitioned check specs are a Dagster preview; the checks run per partition.
        warnings.simplefilter("ignore", PreviewWarning)
        return _table_checks(pipeline, table)


def _table_checks(pipeline: str, table: TableAsset) -> AssetChecksDefinition:
    specs = [
        AssetCheckSpec(
            CHECK_COLUMNS,
            asset=table.key,
            blocking=True,
            partitions_def=table.partitions,
            description="The table exists with the columns the migrations define, or else with "
            "every column the pipeline loaded.",
        )
    ]
    if table.loaded:
        specs.insert(
            0,
            AssetCheckSpec(
                CHECK_ROWS,
                asset=table.key,
                partitions_def=table.partitions,
                description="The last load wrote at least one row"
                + (" (empty loads are allowed)." if table.allow_empty else "."),
            ),
        )
    if table.key_columns:
        specs.append(
            AssetCheckSpec(
                CHECK_KEYS,
                asset=table.key,
                blocking=True,
                partitions_def=table.partitions,
                description=f"No key ({', '.join(table.key_columns)}) present twice, read "
                "with FINAL.",
            )
        )

    @multi_asset_check(
        specs=specs,
        name=f"{pipeline}__{_part(table.table)}_checks",
        required_resource_keys={"clickhouse"},
        pool=CLICKHOUSE_POOL,
        description=f"Checks of {table.database}.{table.table} after each load.",
    )
    def _checks(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        yield from evaluate_table_checks(context, table, [s.name for s in specs])

    return _checks


def evaluate_table_checks(
    context: Any, table: TableAsset, names: Sequence[str]
) -> Iterator[AssetCheckResult]:
    """Evaluate the named checks of ``table`` against ClickHouse and its last materialization."""
    clickhouse = context.resources.clickhouse
    window = window_of(context.op_execution_context) if table.partitions is not None else None
    event = latest_materialization(context.instance, table.key, window)
    facts: dict[str, Any] = {}
    if event is not None and event.asset_materialization is not None:
        facts = {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}
        facts["_run_id"] = event.run_id
    where = window_filter(table, window)
    expected = _migration_columns(clickhouse, f"{table.database}.{table.table}")
    with clickhouse.get_client(step=f"check {table.database}.{table.table}") as client:
        columns = dict(
            client.query(
                "SELECT name, type FROM system.columns WHERE database = {db:String} "
                "AND table = {t:String} ORDER BY position",
                parameters={"db": table.database, "t": table.table},
            ).result_rows
        )
        if CHECK_ROWS in names:
            result = _rows_result(table, facts)
            yield result if where is None else _with_window_rows(client, table, where, result)
        if CHECK_COLUMNS in names:
            yield _columns_result(client, table, columns, expected, facts)
        if CHECK_KEYS in names:
            yield _keys_result(client, table, columns, where)


def _migration_columns(clickhouse: Any, qualified: str) -> tuple[bool, dict[str, str] | None]:
    """(managed by migrations, their columns) for a table; unmanaged when they cannot be read."""
    try:
        expected = ClickHouseMigrationManager(clickhouse).expected_schema()
    except Exception:  # no migrations folder or state table: the pipeline's columns decide
        return False, None
    return qualified in expected, expected.get(qualified)


def _rows_result(table: TableAsset, facts: dict[str, Any]) -> AssetCheckResult:
    rows = facts.get("rows_loaded")
    if rows is None:
        return AssetCheckResult(
            check_name=CHECK_ROWS,
            asset_key=table.key,
            passed=table.allow_empty,
            description="no load recorded for this table yet",
        )
    passed = int(rows) > 0 or table.allow_empty
    return AssetCheckResult(
        check_name=CHECK_ROWS,
        asset_key=table.key,
        passed=passed,
        metadata={"rows_loaded": int(rows), "run_id": str(facts.get("_run_id", ""))},
        description=f"{rows} row(s) loaded"
        + ("" if passed else "; pass allow_empty_loads=True when an empty load is expected"),
    )


def _columns_result(
    client: Any,
    table: TableAsset,
    columns: dict[str, str],
    expected: tuple[bool, dict[str, str] | None],
    facts: dict[str, Any],
) -> AssetCheckResult:
    qualified = f"{table.database}.{table.table}"
    managed, migration_columns = expected
    metadata: dict[str, Any] = {
        "columns": MetadataValue.json(columns),
        "managed_by_migrations": managed,
    }
    if managed:
        problems = schema_differences(client, {qualified: migration_columns})
        expectation = "the migrations"
    elif not columns and table.loaded and facts.get("rows_loaded") == 0:
        # A first load from an empty source creates no table; nothing is wrong yet.
        return AssetCheckResult(
            check_name=CHECK_COLUMNS,
            asset_key=table.key,
            passed=True,
            metadata=metadata,
            description=f"{qualified} not created yet: the last load had no rows",
        )
    elif not columns:
        problems = [f"table {qualified} is missing"]
        expectation = "the pipeline"
    else:
        loaded = list(facts.get("loaded_columns") or [])
        drop = table.schema_drift == DriftPolicy.DISCARD
        problems = [] if drop else [f"column {c} missing" for c in loaded if c not in columns]
        expectation = "the pipeline's last load"
        metadata["loaded_columns"] = MetadataValue.json(loaded)
    return AssetCheckResult(
        check_name=CHECK_COLUMNS,
        asset_key=table.key,
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
        description="; ".join(problems)
        if problems
        else f"{len(columns)} column(s) as {expectation} expect",
    )


def _keys_result(
    client: Any,
    table: TableAsset,
    columns: dict[str, str],
    where: tuple[str, dict[str, Any]] | None = None,
) -> AssetCheckResult:
    qualified = qualified_name(table.table, table.database)
    if not columns:
        return AssetCheckResult(
            check_name=CHECK_KEYS,
            asset_key=table.key,
            passed=False,
            description=f"table {table.database}.{table.table} is missing",
        )
    keys = ", ".join(quote_identifier(c) for c in table.key_columns)
    engine = client.query(
        "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": table.database, "t": table.table},
    ).result_rows[0][0]
    final = " FINAL" if "Replacing" in engine or "Collapsing" in engine else ""
    condition, parameters = where if where is not None else ("", {})
    duplicated, extra = client.query(
        f"SELECT count(), sum(n - 1) FROM (SELECT {keys}, count() AS n FROM {qualified}{final} "
        f"{condition} GROUP BY {keys} HAVING n > 1)",
        parameters=parameters,
    ).result_rows[0]
    return AssetCheckResult(
        check_name=CHECK_KEYS,
        asset_key=table.key,
        passed=duplicated == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"duplicated_keys": int(duplicated), "extra_rows": int(extra or 0)},
        description=(
            f"{duplicated} key(s) present more than once"
            if duplicated
            else "every key present once"
        )
        + (" in the partition's window" if where is not None else ""),
    )


def latest_materialization(
    instance: Any, key: AssetKey, window: PartitionWindow | None
) -> EventLogRecord | None:
    """The latest materialization of ``key``, of the window's last partition when given."""
    if window is None:
        return instance.get_latest_materialization_event(key)
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[window.keys[-1]]), limit=1
    ).records
    return records[0] if records else None


def window_filter(
    table: TableAsset, window: PartitionWindow | None
) -> tuple[str, dict[str, Any]] | None:
    """``WHERE`` clause and bound values selecting the rows of the window's time range."""
    if window is None or window.start is None or window.end is None or not table.time_column:
        return None
    column = quote_identifier(table.time_column)
    clause = (
        f"WHERE toDateTime64({column}, 6, 'UTC') >= {{window_start:DateTime64(6, 'UTC')}} "
        f"AND toDateTime64({column}, 6, 'UTC') < {{window_end:DateTime64(6, 'UTC')}}"
    )
    values = {
        "window_start": window.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "window_end": window.end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    return clause, values


def _with_window_rows(
    client: Any, table: TableAsset, where: tuple[str, dict[str, Any]], result: AssetCheckResult
) -> AssetCheckResult:
    """``result`` with the rows the table holds in the partition's window."""
    clause, values = where
    rows = client.query(
        f"SELECT count() FROM {qualified_name(table.table, table.database)} {clause}",
        parameters=values,
    ).result_rows[0][0]
    passed = result.passed and (int(rows) > 0 or table.allow_empty)
    return AssetCheckResult(
        check_name=CHECK_ROWS,
        asset_key=table.key,
        passed=passed,
        metadata={**result.metadata, "rows_in_window": int(rows)},
        description=f"{result.description}; {rows} row(s) in the partition's window",
    )


def schedule_interval(cron: str, timezone: str) -> timedelta:
    """The time between two ticks of ``cron`` (the longest of the next few)."""
    ticks = cron_string_iterator(datetime.now(UTC).timestamp(), cron, timezone)
    times = [next(ticks) for _ in range(6)]
    return max(b - a for a, b in pairwise(times))


def freshness_checks(keys: Sequence[AssetKey], cron: str, timezone: str) -> Sequence[Any]:
    """Freshness from the schedule: by each tick's deadline, the table was updated within one
    schedule interval plus a grace of up to an hour (the run itself takes time)."""
    interval = schedule_interval(cron, timezone)
    with warnings.catch_warnings():
        # Superseded by FreshnessPolicy, which is evaluated by the daemon only; the check runs
        # in the pipeline's own run and shows next to the other checks.
        warnings.simplefilter("ignore", SupersessionWarning)
        return build_last_update_freshness_checks(
            assets=list(keys),
            deadline_cron=cron,
            timezone=timezone,
            lower_bound_delta=interval + min(interval, timedelta(hours=1)),
            severity=AssetCheckSeverity.WARN,
        )
