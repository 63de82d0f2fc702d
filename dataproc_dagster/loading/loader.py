"""The ClickHouse loader: ``create_clickhouse_loader`` and the op it becomes."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import (
    In,
    MetadataValue,
    OpDefinition,
    OpExecutionContext,
    Out,
    Output,
    RetryPolicy,
    op,
)

from dataproc_dagster.clickhouse.resource import RUN_TAG
from dataproc_dagster.clickhouse.sql_safety import (
    check_expression,
    check_expression_with_engine,
    check_identifier,
)
from dataproc_dagster.clickhouse.tables import TargetTable, describe_table, split_table
from dataproc_dagster.core.choices import parse_choice
from dataproc_dagster.core.chunks import ChunkSet
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.modes import DriftPolicy, WriteMode
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.loading.config import LoaderConfig
from dataproc_dagster.loading.spec import LoadSpec
from dataproc_dagster.loading.writer import load_chunkset
from dataproc_dagster.observability.metrics import measure_step
from dataproc_dagster.pipeline.partitions import window_facts
from dataproc_dagster.pipeline.steps import (
    ChunkSetType,
    cleanup_run_chunks,
    materialization,
    output_is_asset,
    pipeline_errors,
    table_metadata,
    target_pool,
)
from dataproc_dagster.pipeline.window import window_of


@dataclass(frozen=True)
class ClickHouseLoader:
    """Loader spec; build it with :func:`create_clickhouse_loader`."""

    spec: LoadSpec | None
    from_config: bool = False
    retry_policy: RetryPolicy | None = None
    keep_chunks: bool = False
    on_chunk: Callable[[int, int], None] | None = None

    @property
    def target(self) -> TargetTable | None:
        """The target table, when known before the run."""
        if self.spec is None:
            return None
        return TargetTable(self.spec.database, self.spec.table)

    def describe(self) -> str:
        """The target, for op descriptions."""
        if self.spec is None:
            return "ClickHouse table from run config"
        return f"ClickHouse {self.spec.database}.{self.spec.table} ({self.spec.mode})"

    def build_op(self, pipeline: str, name: str) -> OpDefinition:
        """The load op of a pipeline."""
        return make_load_op(pipeline, name, self)

    def resolve(self, config: LoaderConfig | None, default_database: str) -> LoadSpec:
        """The load spec: the fixed one, or the one in the run config of a config-driven loader.

        Raises:
            ConfigError: For an invalid value, naming the option and the fix.
        """
        if not self.from_config:
            assert self.spec is not None
            return self.spec
        assert config is not None, "a config-driven load step receives its LoaderConfig"
        database, table = split_table(config.table, default_database)
        spec = LoadSpec(
            database=database,
            table=table,
            mode=WriteMode(config.mode),
            key_columns=tuple(config.key_columns),
            order_by=tuple(config.order_by),
            partition_by=config.partition_by,
            schema_drift=DriftPolicy(config.schema_drift),
        )
        spec.validate()
        check_spec_sql(spec, prefix="run config ")
        return spec


def check_spec_sql(spec: LoadSpec, *, prefix: str = "") -> None:
    """Refuse names and expressions of ``spec`` that could change the SQL built from them.

    Names are quoted when used, so they only need to be plain text; ``partition_by`` must be
    exactly one ClickHouse expression (see :mod:`dataproc_dagster.clickhouse.sql_safety`).

    Raises:
        ConfigError: Naming the option (``prefix`` + its name), the value and the fix.
    """
    where = f"{spec.database}.{spec.table}"
    check_identifier(
        spec.database, option=f"{prefix}table (database part)", source=where, kind="table"
    )
    check_identifier(spec.table, option=f"{prefix}table", source=where, kind="table")
    for option, names in (("order_by", spec.order_by), ("key_columns", spec.key_columns)):
        for name in names:
            check_identifier(name, option=f"{prefix}{option} item", source=where)
    if spec.version_column is not None:
        check_identifier(spec.version_column, option=f"{prefix}version_column", source=where)
    if spec.partition_by is not None:
        check_expression(spec.partition_by, option=f"{prefix}partition_by", source=where)


def create_clickhouse_loader(
    table: str | None = None,
    *,
    mode: WriteMode | str = WriteMode.APPEND,
    database: str | None = None,
    order_by: Sequence[str] = (),
    partition_by: str | None = None,
    key_columns: Sequence[str] = (),
    version_column: str | None = None,
    schema_drift: DriftPolicy | str = DriftPolicy.FREEZE,
    create_table: bool = True,
    allow_empty_replace: bool = False,
    optimize_after_upsert: bool = False,
    retry_policy: RetryPolicy | None = None,
    keep_chunks: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
) -> ClickHouseLoader:
    """Create a loader that writes a pipeline's chunks into a ClickHouse table.

    Args:
        table: ``table`` or ``database.table``; ``None`` reads the target from run config
            (``table``, ``mode``, ``key_columns``, ``order_by``, ``partition_by``,
            ``schema_drift``), for generic jobs.
        mode: ``append``, ``replace``, ``replace_partitions`` or ``upsert`` (a
            :class:`WriteMode` or its value; see docs/loading.md).
        database: Database, when ``table`` does not name it (default ``CLICKHOUSE_DATABASE``).
        order_by: Sorting key of a table the loader creates.
        partition_by: Partition expression of a table the loader creates.
        key_columns: Key of ``upsert``.
        version_column: Column deciding the latest row in ``upsert`` (default: load time).
        schema_drift: ``freeze``, ``evolve`` or ``discard`` for columns the table lacks (a
            :class:`DriftPolicy` or its value).
        create_table: Create a missing table from the data's schema.
        allow_empty_replace: Let ``replace`` with no rows empty the table, and a partitioned
            ``replace_partitions`` run with no rows empty its window's partitions.
        optimize_after_upsert: ``OPTIMIZE ... FINAL`` after an upsert.
        retry_policy: Dagster retry policy of the load step (loads are retry-safe).
        keep_chunks: Keep the run's chunk files after a successful load.
        on_chunk: Called after each staged chunk with (index, rows so far); for progress
            reporting and fault-injection tests.

    Example:
        >>> loader = create_clickhouse_loader("analytics.events", mode="upsert", key_columns=["id"])
    """
    if table is None:
        return ClickHouseLoader(
            None,
            from_config=True,
            retry_policy=retry_policy,
            keep_chunks=keep_chunks,
            on_chunk=on_chunk,
        )
    default_db = database or get_settings().clickhouse_database
    db, name = split_table(table, default_db) if database is None else (database, table)
    where = f"{db}.{name}"
    spec = LoadSpec(
        database=db,
        table=name,
        mode=parse_choice(WriteMode, mode, what="write mode", source=where),
        order_by=tuple(order_by),
        partition_by=partition_by,
        key_columns=tuple(key_columns),
        version_column=version_column,
        schema_drift=parse_choice(
            DriftPolicy, schema_drift, what="schema_drift policy", source=where
        ),
        create_table=create_table,
        allow_empty_replace=allow_empty_replace,
        optimize_after_upsert=optimize_after_upsert,
    )
    spec.validate()
    check_spec_sql(spec)
    return ClickHouseLoader(
        spec, retry_policy=retry_policy, keep_chunks=keep_chunks, on_chunk=on_chunk
    )


def check_target_ready(client: Any, spec: LoadSpec, *, from_config: bool) -> None:
    """Checks that need the engine, run before anything is written.

    ``partition_by`` goes through ClickHouse's own parser; a target database named in run
    config must exist (a typo there must not create a database).

    Raises:
        ConfigError: Naming the option, the value and the fix.
    """
    prefix = "run config " if from_config else ""
    where = f"{spec.database}.{spec.table}"
    if spec.partition_by is not None:
        check_expression_with_engine(
            client, spec.partition_by, option=f"{prefix}partition_by", source=where
        )
    if from_config:
        found = client.query(
            "SELECT count() FROM system.databases WHERE name = {d:String}",
            parameters={"d": spec.database},
        ).result_rows
        if not found or not found[0][0]:
            raise ConfigError(
                f"run config table names database {spec.database!r}, which does not exist",
                source=where,
                fix=f"create database {spec.database!r} with a migration first, or correct "
                "the database part of `table` (a bare name uses CLICKHOUSE_DATABASE)",
            )


def _load_facts(spec: LoadSpec, rows: int, columns: Sequence[str]) -> dict[str, Any]:
    """What the asset checks of the table read back from its materialization."""
    return {
        "write_mode": spec.mode.value,
        "rows_loaded": rows,
        "loaded_columns": MetadataValue.json(list(columns)),
    }


def load_identity(context: OpExecutionContext, chunks: ChunkSet) -> str:
    """``<root run id>/<step>``, plus the window the source read (an incremental bound).

    The same for a step's retries and every re-execution of it that loads the same window.
    """
    root = context.run.root_run_id or context.run_id
    identity = f"{root}/{'.'.join(context.op_handle.path)}"
    return f"{identity}@{chunks.window}" if chunks.window else identity


def make_load_op(pipeline: str, name: str, loader: ClickHouseLoader) -> OpDefinition:
    """The op that writes the chunks and records an ``AssetMaterialization`` of the table."""

    def run(
        context: OpExecutionContext, chunks: ChunkSet, config: LoaderConfig | None
    ) -> Iterator[Any]:
        clickhouse = context.resources.clickhouse
        source = loader.describe()
        with pipeline_errors(pipeline, name, source):
            spec = loader.resolve(config, clickhouse.database)
            source = f"ClickHouse {spec.database}.{spec.table}"
        with (
            pipeline_errors(pipeline, name, source),
            measure_step(name, context.log) as metrics,
            clickhouse.get_client(step=name) as client,
        ):
            check_target_ready(client, spec, from_config=loader.from_config)
            result = load_chunkset(
                client,
                chunks,
                spec,
                log=context.log,
                on_chunk=loader.on_chunk,
                engine_reads_files=clickhouse.is_embedded,
                run_id=context.run_id,
                load_id=load_identity(context, chunks),
                # The embedded engine's directory lock is held for the whole step.
                exclusive=clickhouse.is_embedded,
            )
            metrics.add(result.rows, result.chunks)
            metrics.extra.update(
                {
                    "table": f"{spec.database}.{spec.table}",
                    "write_mode": spec.mode.value,
                    "rows_not_loaded": chunks.rows - result.rows if not result.skipped else 0,
                    "table_created": result.created,
                }
            )
            if result.skipped:
                metrics.extra["skipped"] = result.skipped
            if result.recovered:
                metrics.extra["recovered"] = "; ".join(result.recovered)
            if result.columns_added:
                metrics.extra["columns_added"] = ", ".join(result.columns_added)
            if result.columns_discarded:
                metrics.extra["columns_discarded"] = ", ".join(result.columns_discarded)
            # No rows and no table (a first run against an empty source): nothing to report.
            exists = describe_table(client, spec.database, spec.table) is not None
            event = (
                materialization(
                    client,
                    spec.database,
                    spec.table,
                    f"{spec.mode} by pipeline {pipeline}",
                    {
                        "write_mode": spec.mode.value,
                        "rows_loaded": result.rows,
                        RUN_TAG: clickhouse.describe(),
                    },
                )
                if exists
                else None
            )
            facts: dict[str, Any] = {}
            if output_is_asset(context):
                # The pipeline's asset: the table's figures go on the asset's own materialization.
                facts = table_metadata(client, spec.database, spec.table) if exists else {}
                facts.update(_load_facts(spec, result.rows, chunks.columns))
                facts.update(window_facts(window_of(context), result.rows, facts))
                facts[RUN_TAG] = clickhouse.describe()
                event = None
        if event is not None:
            yield event
        summary = {
            "table": f"{spec.database}.{spec.table}",
            "mode": spec.mode.value,
            "rows": result.rows,
        }
        yield Output(summary, metadata={**metrics.metadata(), **facts})
        if not loader.keep_chunks:
            cleanup_run_chunks(context, chunks)

    def _load(context: OpExecutionContext, chunks: ChunkSet) -> Iterator[Any]:
        yield from run(context, chunks, None)

    # A generic job's load step takes its target from run config: Dagster reads the schema
    # from the `config` parameter's annotation (set without `from __future__ import annotations`).
    def _load_configured(
        context: OpExecutionContext, chunks: ChunkSet, config: LoaderConfig
    ) -> Iterator[Any]:
        yield from run(context, chunks, config)

    return op(
        name=name,
        description=f"Load: {loader.describe()}",
        ins={"chunks": In(ChunkSetType)},
        out=Out(dict, description="What was loaded (table, mode, rows), for steps after the load"),
        required_resource_keys={"clickhouse"},
        retry_policy=loader.retry_policy,
        tags={"kind": "clickhouse", "dataproc/step": "load"},
        pool=target_pool(
            loader.spec.database if loader.spec else None,
            loader.spec.table if loader.spec else None,
        ),
    )(_load_configured if loader.from_config else _load)
