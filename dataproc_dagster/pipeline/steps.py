"""Turns extractor, transformer, loader and SQL specs into Dagster ops.

This is the one place where steps read and write chunks, measure themselves, report metadata
and turn errors into messages that name the pipeline, the step and the fix.
"""

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetMaterialization,
    Config,
    DagsterType,
    Failure,
    In,
    MetadataValue,
    Nothing,
    OpDefinition,
    OpExecutionContext,
    Out,
    Output,
    TableColumn,
    TableSchema,
    check_dagster_type,
    op,
)

from dataproc_dagster.clickhouse.sql import qualified_name, scalar
from dataproc_dagster.clickhouse.tables import TargetTable
from dataproc_dagster.core.chunk_store import drop_local_copy
from dataproc_dagster.core.chunk_store import prune_runs as prune_stored_runs
from dataproc_dagster.core.chunk_store import remove_runs as remove_stored_runs
from dataproc_dagster.core.chunks import ChunkSet, ChunkWriter
from dataproc_dagster.core.errors import DataprocError, SchemaError
from dataproc_dagster.core.redaction import contains_secret, mask_secrets
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.observability.metrics import StepMetrics, measure_step
from dataproc_dagster.pipeline.contracts import WINDOW_METADATA, Extractor, StepContext
from dataproc_dagster.pipeline.workers import check_shared_storage

CLICKHOUSE_POOL = "clickhouse"


def target_pool(database: str | None, table: str | None) -> str:
    """The Dagster pool of a step that loads ``database.table``.

    On a ClickHouse server, one pool per target table (``clickhouse/<db>.<table>``, one slot by
    the instance's ``default_limit``), shared by every pipeline that loads the table, so that the
    project's own runs never interleave a full ``replace`` with another load of the same table
    (loads of different tables still run side by side). On the embedded engine, the one
    ``clickhouse`` pool, which serves one step at a time. A target known only from run config
    (the generic jobs) takes the ``clickhouse`` pool.
    """
    if table is None or database is None or get_settings().clickhouse_url.startswith("chdb:"):
        return CLICKHOUSE_POOL
    return f"{CLICKHOUSE_POOL}/{database}.{table}"


# The code location's name in workspace.yaml and for `dagster dev -m dataproc_dagster`.
CODE_LOCATION = "dataproc_dagster"
# The run tag Dagster sets on runs launched from a code location (its value is part of the
# instance's stored data, so it is stable across versions).
REPOSITORY_LABEL_TAG = ".dagster/repository"
REPOSITORY_LABEL = f"__repository__@{CODE_LOCATION}"
KEEP_FAILED_RUN_CHUNKS_DAYS = 7.0

ChunkSetType = DagsterType(
    name="ChunkSet",
    description="Chunked Arrow data passed between steps (see docs/architecture.md).",
    type_check_fn=lambda _ctx, value: isinstance(value, ChunkSet),
)


def label_cli_run(context: OpExecutionContext) -> None:
    """Give a run started with ``dagster job execute`` the repository label that runs launched
    from the UI carry, so it is listed on the job's Runs tab too."""
    if REPOSITORY_LABEL_TAG in context.run.tags:
        return
    try:
        context.instance.add_run_tags(context.run_id, {REPOSITORY_LABEL_TAG: REPOSITORY_LABEL})
    except Exception as exc:  # a label is cosmetic; never fail a load over it
        context.log.debug(f"could not label the run for the job page: {exc}")


def chunk_directory(context: OpExecutionContext, step: str) -> Path:
    """Folder for the chunks a step writes in this run."""
    return get_settings().runs_dir / context.run_id / step


def dataset_id(context: OpExecutionContext, step: str) -> str:
    """Stable identity of the data a step writes in this run."""
    return f"{context.run_id}/{step}"


@contextmanager
def pipeline_errors(pipeline: str, step: str, source: str) -> Iterator[None]:
    """Turn any error of a step into a Dagster ``Failure`` naming pipeline, step and source.

    Known secret values are masked in the message; when the original exception's text holds
    one, it is not chained either, since Dagster stores the whole chain in the event log. A
    framework error (message, source and fix already in the ``Failure``) is not chained
    itself, only what caused it, so a failure reads once in the UI and the console.
    """
    try:
        yield
    except Failure:
        raise
    except Exception as exc:
        if isinstance(exc, DataprocError):
            exc.with_pipeline(pipeline)
            text, where = f"{exc} (step {step})", exc.source or source
        else:
            text = (
                f"[pipeline {pipeline}] [{source}] step {step} failed: "
                f"{type(exc).__name__}: {str(exc)[:1000]}"
            )
            where = source
        failure = Failure(
            description=mask_secrets(text),
            metadata={"pipeline": pipeline, "step": step, "source": mask_secrets(where)},
        )
        if _chain_holds_secret(exc):
            raise failure from None
        raise failure from (exc.__cause__ if isinstance(exc, DataprocError) else exc)


def _chain_holds_secret(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if contains_secret(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def config_class_of(schema: Any) -> type[Config] | None:
    """``schema`` when it is a ``dagster.Config`` class (a step's run-config model), else None."""
    return schema if isinstance(schema, type) and issubclass(schema, Config) else None


def _output(chunks: ChunkSet, metrics: StepMetrics) -> Output[ChunkSet]:
    metadata: dict[str, Any] = dict(metrics.metadata())
    metadata["columns"] = MetadataValue.text(", ".join(chunks.columns))
    return Output(chunks, metadata=metadata)


def make_extract_op(
    pipeline: str,
    name: str,
    extractor: Extractor,
    *,
    target: TargetTable | None = None,
    chunk_rows: int | None = None,
) -> OpDefinition:
    """An op that runs ``extractor`` and writes its chunks; outputs a :class:`ChunkSet`."""
    keys = set(extractor.required_resource_keys)
    if target is not None:
        keys.add("clickhouse")
    uses_clickhouse = "clickhouse" in keys

    config_class = config_class_of(extractor.config_schema)

    def run(context: OpExecutionContext, config: Config | None) -> Iterator[Output[ChunkSet]]:
        source = extractor.describe()
        ctx = StepContext(
            pipeline,
            name,
            context,
            dict(context.op_config or {}),
            target,
            config_model=config,
        )
        prune_old_chunks()
        label_cli_run(context)
        with pipeline_errors(pipeline, name, source), measure_step(name, context.log) as metrics:
            check_shared_storage(context.job_def.executor_def.name)
            with ChunkWriter(
                chunk_directory(context, name),
                dataset_id(context, name),
                chunk_rows=chunk_rows or get_settings().chunk_rows,
                source=source,
            ) as writer:
                for chunk in extractor.extract(ctx):
                    writer.write(chunk)
                chunks = writer.close()
            if ctx.metadata.get(WINDOW_METADATA):
                chunks = replace(chunks, window=str(ctx.metadata[WINDOW_METADATA]))
            chunks = chunks.published()
            metrics.add(chunks.rows, chunks.chunk_count)
            metrics.extra.update(ctx.metadata)
        yield _output(chunks, metrics)

    # Dagster reads the schema from the annotation of a `config` parameter (the public way of
    # attaching a Config class); the class is known only here, so the annotation is set here.
    def _extract(context: OpExecutionContext) -> Iterator[Output[ChunkSet]]:
        yield from run(context, None)

    def _extract_configured(
        context: OpExecutionContext, config: Config
    ) -> Iterator[Output[ChunkSet]]:
        yield from run(context, config)

    compute: Callable[..., Iterator[Output[ChunkSet]]] = _extract
    if config_class is not None:
        _extract_configured.__annotations__["config"] = config_class
        compute = _extract_configured

    return op(
        name=name,
        description=f"Extract: {extractor.describe()}",
        required_resource_keys=keys,
        config_schema=None if config_class is not None else extractor.config_schema,
        # Carries the lineage edge from the source asset; nothing flows through it.
        ins={"source": In(Nothing)},
        out=Out(ChunkSetType),
        tags={"kind": extractor.kind, "dataproc/step": "extract"},
        pool=CLICKHOUSE_POOL if uses_clickhouse and extractor.kind == "clickhouse" else None,
    )(compute)


def make_transform_op(pipeline: str, name: str, transformer: Any) -> OpDefinition:
    """An op that applies a transformer to every chunk; outputs a new :class:`ChunkSet`."""
    output_type: DagsterType | None = transformer.output_type

    @op(
        name=name,
        description=f"Transform: {transformer.describe()}",
        ins={"chunks": In(ChunkSetType)},
        out=Out(ChunkSetType),
        config_schema=transformer.config_schema,
        tags={"kind": "pyarrow" if transformer.arrow else "pandas", "dataproc/step": "transform"},
    )
    def _transform(context: OpExecutionContext, chunks: ChunkSet) -> Iterator[Output[ChunkSet]]:
        source = f"transformer {transformer.describe()}"
        config = dict(context.op_config or {})
        with pipeline_errors(pipeline, name, source), measure_step(name, context.log) as metrics:
            with ChunkWriter(
                chunk_directory(context, name),
                dataset_id(context, name),
                chunk_rows=max(max(chunks.chunk_rows, default=1), 1),
                source=source,
            ) as writer:
                chunks_in = chunks.iter_tables() if transformer.arrow else chunks.iter_frames()
                for index, frame in enumerate(chunks_in):
                    result = transformer.apply(frame, config)
                    if output_type is not None:
                        check = check_dagster_type(output_type, result)
                        if not check.success:
                            raise SchemaError(
                                f"chunk {index} fails the output type {output_type.display_name}: "
                                f"{check.description}",
                                source=source,
                                fix="correct the transformer, or relax the column constraint",
                            )
                    writer.write(result)
                out = replace(writer.close(), window=chunks.window)
            out = out.published()
            drop_local_copy(chunks.store_url)  # the input's download, if any
            metrics.add(out.rows, out.chunk_count)
            metrics.extra["rows_in"] = chunks.rows
        yield _output(out, metrics)

    return _transform


def table_schema(columns: list[tuple[str, str]]) -> TableSchema:
    """A Dagster ``TableSchema`` from (name, ClickHouse type) pairs."""
    return TableSchema(columns=[TableColumn(name=n, type=t) for n, t in columns])


def table_metadata(client: Any, database: str, table: str) -> dict[str, Any]:
    """Dagster's standard metadata of a ClickHouse table: row count, name, column schema.

    The row count of an upsert (ReplacingMergeTree) table is its ``FINAL`` count, each key
    once; ``dataproc/stored_rows`` then holds the rows stored before ClickHouse merges them.
    """
    columns = client.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String} "
        "AND table = {t:String} ORDER BY position",
        parameters={"db": database, "t": table},
    ).result_rows
    qualified = qualified_name(table, database)
    engine = client.query(
        "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    rows = scalar(client, f"SELECT count() FROM {qualified}")
    stored: dict[str, Any] = {}
    if engine and str(engine[0][0]).endswith("ReplacingMergeTree"):
        # Upsert: the rows a reader sees (each key once); stored versions until the merge apart.
        stored = {"dataproc/stored_rows": rows}
        rows = scalar(client, f"SELECT count() FROM {qualified} FINAL")
    return {
        "dagster/row_count": rows,
        **stored,
        "dagster/table_name": f"{database}.{table}",
        "dagster/column_schema": table_schema([(n, t) for n, t in columns]),
    }


def materialization(
    client: Any, database: str, table: str, description: str, extra: dict[str, Any]
) -> AssetMaterialization:
    """An ``AssetMaterialization`` for a ClickHouse table with Dagster's standard metadata."""
    return AssetMaterialization(
        asset_key=AssetKey(["clickhouse", database, table]),
        description=description,
        metadata={**table_metadata(client, database, table), **extra},
    )


def output_is_asset(context: OpExecutionContext, output_name: str = "result") -> bool:
    """True when the op's output is an asset (the op runs inside a pipeline's asset).

    Such an op reports the table through its ``Output`` metadata; an op of a plain job (the
    generic jobs) logs an ``AssetMaterialization`` of the table it wrote instead.
    """
    if not context.has_assets_def:
        return False
    try:
        context.asset_key_for_output(output_name)
    except Exception:  # an inner op whose output feeds the next op, not the asset
        return False
    return True


def cleanup_run_chunks(context: OpExecutionContext, chunks: ChunkSet) -> None:
    """Remove the chunks of this run, and of the run that produced ``chunks``, once loaded.

    A re-executed run loads the chunks its parent run wrote, so both folders go.
    """
    runs = get_settings().runs_dir.resolve()
    folders = {runs / context.run_id}
    producer = Path(chunks.directory).resolve().parent
    if producer.parent == runs:
        folders.add(producer)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    remove_stored_runs([context.run_id], chunks.store_url)


def prune_old_chunks(max_age_days: float | None = None) -> list[str]:
    """Remove chunk folders of runs older than ``max_age_days`` (default: the setting
    ``CHUNK_RETENTION_DAYS``; failed runs keep theirs for re-execution until then). Returns the
    run ids removed. ``./run.sh cleanup_chunks`` applies the whole rule."""
    if max_age_days is None:
        max_age_days = get_settings().chunk_retention_days
    runs = get_settings().runs_dir
    if not runs.is_dir():
        return []
    cutoff = time.time() - max_age_days * 86_400
    removed = []
    for folder in runs.iterdir():
        try:
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        except OSError:
            continue
    removed.extend(prune_stored_runs(max_age_days))
    return removed
