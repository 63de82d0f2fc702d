"""ELT steps: SQL run inside ClickHouse whose result replaces a table (staging + swap)."""

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    In,
    MaterializeResult,
    Nothing,
    OpDefinition,
    OpExecutionContext,
    Out,
    Output,
    multi_asset,
    op,
)

from dataproc_dagster.clickhouse.sql import qualified_name, quote_identifier
from dataproc_dagster.clickhouse.sql_safety import (
    check_expression,
    check_identifier,
    check_single_statement,
)
from dataproc_dagster.clickhouse.tables import count_rows, describe_table, drop_table, split_table
from dataproc_dagster.core.errors import LoadError
from dataproc_dagster.observability.metrics import measure_step
from dataproc_dagster.pipeline.steps import (
    CLICKHOUSE_POOL,
    label_cli_run,
    pipeline_errors,
    table_metadata,
)

# Upsert tables are ReplacingMergeTree: until ClickHouse merges their parts in the background,
# an updated key is stored twice and a plain SELECT counts both. ``final = 1`` reads every
# table of the query that supports FINAL as merged (and leaves other engines alone), so a SQL
# step sums what the loader published. Merging on write instead (OPTIMIZE ... FINAL after each
# load) would rewrite the whole table on every load and still race other writers.
READ_MERGED: dict[str, Any] = {"final": 1}


@dataclass(frozen=True)
class SqlStep:
    """ELT step spec; build it with :func:`create_sql_step`."""

    select: str
    table: str
    order_by: tuple[str, ...] = ()
    engine: str = "MergeTree"
    name: str | None = None
    # Tables the SELECT reads (``db.table`` or ``table``), for lineage; default: parsed from it.
    reads: tuple[str, ...] = ()

    def describe(self) -> str:
        """Target of the step."""
        return f"ClickHouse SQL -> {self.table}"


def create_sql_step(
    select: str,
    table: str,
    *,
    order_by: Sequence[str] = (),
    engine: str = "MergeTree",
    name: str | None = None,
    reads: Sequence[str] = (),
) -> SqlStep:
    """A step that rebuilds ``table`` from a ``SELECT`` run inside ClickHouse.

    The result is written to a staging table and swapped in with ``EXCHANGE TABLES`` (or
    renamed, the first time), so readers never see a half-built table. Tables the ``SELECT``
    reads are read with ``FINAL`` where the engine supports it, so upsert tables count each key
    once.

    Args:
        select: The ``SELECT`` statement.
        table: ``table`` or ``database.table`` to replace.
        order_by: Sorting key of the new table.
        engine: Table engine of the new table.
        name: Step name (default ``sql_<table>``).
        reads: Tables the ``SELECT`` reads, upstream of this step's asset in the lineage
            (default: the tables named after ``FROM`` and ``JOIN``).

    Raises:
        ConfigError: For a table or column name that is not plain, an ``engine`` that is not
            one expression, or a ``select`` holding several statements.
    """
    for part in table.split(".", 1):
        check_identifier(part, option="create_sql_step table", source=table, kind="table")
    for column in order_by:
        check_identifier(column, option="create_sql_step order_by item", source=table)
    check_expression(engine, option="create_sql_step engine", source=table)
    check_single_statement(select, source=f"create_sql_step for {table}")
    return SqlStep(
        select=select,
        table=table,
        order_by=tuple(order_by),
        engine=engine,
        name=name,
        reads=tuple(reads),
    )


def make_sql_op(pipeline: str, name: str, step: SqlStep) -> OpDefinition:
    """The op that runs an ELT step after the previous step (pipelines without assets)."""

    @op(
        name=name,
        description=step.describe(),
        ins={"after": In(Nothing)},
        out=Out(dict),
        required_resource_keys={"clickhouse"},
        tags={"kind": "clickhouse", "dataproc/step": "sql"},
        pool=CLICKHOUSE_POOL,
    )
    def _sql(context: OpExecutionContext) -> Iterator[Any]:
        where, rows, metadata, table_facts = run_sql_step(context, pipeline, name, step)
        database, table = where.split(".", 1)
        yield AssetMaterialization(
            asset_key=AssetKey(["clickhouse", database, table]),
            description=f"rebuilt by pipeline {pipeline}",
            metadata={**table_facts, "write_mode": "sql"},
        )
        yield Output({"table": where, "rows": rows}, metadata=metadata)

    return _sql


def make_sql_asset(pipeline: str, name: str, step: SqlStep, spec: AssetSpec) -> AssetsDefinition:
    """The asset of an ELT step: its table, downstream of the tables its ``SELECT`` reads."""

    @multi_asset(
        name=name,
        specs=[spec],
        required_resource_keys={"clickhouse"},
        op_tags={"dataproc/step": "sql", "dataproc/pipeline": pipeline},
        pool=CLICKHOUSE_POOL,
    )
    def _sql(context: AssetExecutionContext) -> MaterializeResult:
        _where, _rows, metadata, table_facts = run_sql_step(
            context.op_execution_context, pipeline, name, step
        )
        return MaterializeResult(
            asset_key=spec.key, metadata={**metadata, **table_facts, "write_mode": "sql"}
        )

    return _sql


def run_sql_step(
    context: OpExecutionContext, pipeline: str, name: str, step: SqlStep
) -> tuple[str, int, dict[str, Any], dict[str, Any]]:
    """Rebuild the step's table; returns ``db.table``, its rows, step and table metadata."""
    clickhouse = context.resources.clickhouse
    database, table = split_table(step.table, clickhouse.database)
    where = f"{database}.{table}"
    label_cli_run(context)
    with (
        pipeline_errors(pipeline, name, f"ClickHouse {where}"),
        measure_step(name, context.log) as metrics,
        clickhouse.get_client(step=name) as client,
    ):
        digest = hashlib.sha1(context.run_id.encode()).hexdigest()[:12]
        stage = f"_stage_{table}_{digest}"
        drop_table(client, database, stage)
        order = ", ".join(quote_identifier(c) for c in step.order_by) or "tuple()"
        try:
            client.command(
                f"CREATE TABLE {qualified_name(stage, database)} ENGINE = {step.engine} "
                f"ORDER BY ({order}) AS {step.select}",
                settings=READ_MERGED,
            )
            if describe_table(client, database, table) is None:
                client.command(
                    f"RENAME TABLE {qualified_name(stage, database)} "
                    f"TO {qualified_name(table, database)}"
                )
            else:
                client.command(
                    f"EXCHANGE TABLES {qualified_name(table, database)} "
                    f"AND {qualified_name(stage, database)}"
                )
        except Exception as exc:
            raise LoadError(
                f"the SQL step failed; {where} is unchanged: {str(exc)[:600]}",
                source=where,
                fix="correct the SELECT (run it alone first)",
            ) from exc
        finally:
            drop_table(client, database, stage)
        rows = count_rows(client, database, table)
        metrics.add(rows)
        facts = table_metadata(client, database, table)
    return where, rows, dict(metrics.metadata()), facts
