"""``create_etl_pipeline``: extract -> transform* -> load (-> SQL steps) as Dagster assets and
the asset job that materializes them (see :mod:`dataproc_dagster.pipeline.assets`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetKey,
    AssetSelection,
    AssetSpec,
    Definitions,
    DependencyDefinition,
    ExecuteInProcessResult,
    ExecutorDefinition,
    GraphDefinition,
    JobDefinition,
    NodeInvocation,
    OpDefinition,
    ScheduleDefinition,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.pipeline.assets import (
    SOURCE_KINDS,
    TableAsset,
    freshness_checks,
    graph_asset_for,
    source_keys,
    table_checks,
    table_key,
    tables_read,
)
from dataproc_dagster.pipeline.contracts import Extractor, Loader
from dataproc_dagster.pipeline.schedules import check_schedule, optional_schedule
from dataproc_dagster.pipeline.sql_steps import SqlStep, make_sql_asset, make_sql_op
from dataproc_dagster.pipeline.steps import make_extract_op, make_transform_op
from dataproc_dagster.pipeline.transformers import Transformer, create_transformer

if TYPE_CHECKING:
    # What define_asset_job returns; Dagster exports no public name for the type.
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

EXECUTORS: dict[str, ExecutorDefinition] = {
    "in_process": in_process_executor,
    "multiprocess": multiprocess_executor,
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Pipeline:
    """A pipeline: its assets and asset checks, its job and, when it has a cron, its schedule.

    ``job`` is an asset job (``define_asset_job``) materializing ``assets``; pipelines whose
    target comes from run config (the generic jobs) have a plain op job and no assets.
    """

    name: str
    job: JobDefinition | UnresolvedAssetJobDefinition
    schedule: ScheduleDefinition | None
    module: str = ""
    # Tables the pipeline writes (``db.table``, or a bare name in the resource's database), for
    # the integrity checks: the loader's target, then each SQL step's table.
    targets: tuple[str, ...] = ()
    assets: tuple[Any, ...] = ()
    asset_checks: tuple[Any, ...] = ()
    # External assets of the sources the extractor reads (lineage starts there).
    sources: tuple[AssetSpec, ...] = ()
    description: str | None = None
    owners: tuple[str, ...] = ()

    @property
    def asset_keys(self) -> list[AssetKey]:
        """Keys of the assets the pipeline materializes, in step order."""
        return [key for assets_def in self.assets for key in assets_def.keys]

    def resolve_job(self, resources: Mapping[str, Any] | None = None) -> JobDefinition:
        """The job as Dagster runs it, with ``resources`` bound (for tests and scripts)."""
        defs = Definitions(
            assets=[*self.sources, *self.assets],
            asset_checks=list(self.asset_checks),
            jobs=[self.job],
            resources=dict(resources or {}),
        )
        return defs.resolve_job_def(self.name)

    def execute_in_process(
        self, resources: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> ExecuteInProcessResult:
        """Run the pipeline's job in this process (``JobDefinition.execute_in_process``)."""
        return self.resolve_job(resources).execute_in_process(**kwargs)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"invalid pipeline name {name!r}",
            fix="use letters, digits and underscores, starting with a letter",
        )


def create_etl_pipeline(
    name: str,
    extractor: Extractor | None = None,
    loader: Loader | None = None,
    transformers: Sequence[Transformer | Any] = (),
    *,
    transformer: Transformer | Any | None = None,
    sql_steps: Sequence[SqlStep] = (),
    schedule: str | None = None,
    timezone: str = "UTC",
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    executor: str | ExecutorDefinition = "in_process",
    chunk_rows: int | None = None,
    schedule_run_config: Mapping[str, Any] | None = None,
    owners: Sequence[str] = (),
    group_name: str | None = None,
    allow_empty_loads: bool = False,
) -> Pipeline:
    """Build the assets and asset job ``extract -> transform* -> load -> sql*`` and its schedule.

    The loaded table is a graph-backed asset ``clickhouse/<db>/<table>`` (the extract,
    transform and load ops form its graph); each SQL step is an asset of its own table,
    downstream of the tables it reads; the source is an external asset upstream. Each table
    has asset checks run with every load (see :mod:`dataproc_dagster.pipeline.assets`).

    Args:
        name: Pipeline and job name (letters, digits, underscores).
        extractor: Where rows come from (``create_http_extractor``, ...). ``None`` for an
            ELT-only pipeline made of ``sql_steps``.
        loader: Where rows go (``create_clickhouse_loader``, or ``create_loader`` for others).
        transformers: Transformers applied in order; plain functions are wrapped.
        transformer: A single transformer (the original framework's argument name).
        sql_steps: ELT steps run in ClickHouse after the load (``create_sql_step``).
        schedule: Cron string; ``None`` for no schedule.
        timezone: The schedule's ``execution_timezone`` (always explicit; default UTC).
        description: Job description shown in the UI.
        tags: Job tags.
        executor: ``in_process`` (default: steps share one process, one embedded-engine open
            at a time), ``multiprocess``, or any executor definition (``k8s_job_executor``,
            ``celery_executor``) for steps on other machines.
        chunk_rows: Rows per chunk between steps (default ``CHUNK_ROWS``).
        schedule_run_config: Run config for scheduled runs. Op config of an asset pipeline
            nests under its graph: ``ops: {<name>__etl: {ops: {<name>__extract: {config: ...}}}}``.
        owners: Owners of the pipeline's assets (``team:data`` or e-mail addresses); default
            the pipeline module's ``OWNERS``.
        group_name: Asset group (default: the pipeline name).
        allow_empty_loads: A load of no rows passes the ``rows_loaded`` check.

    Raises:
        ConfigError: For an invalid name, cron string, timezone or combination of steps.
    """
    _check_name(name)
    steps = list(transformers) + ([transformer] if transformer is not None else [])
    wrapped = [t if isinstance(t, Transformer) else create_transformer(t) for t in steps]
    if extractor is None and (loader is not None or wrapped):
        raise ConfigError(
            "a pipeline with a loader or transformers needs an extractor", pipeline=name
        )
    if extractor is not None and loader is None:
        raise ConfigError(
            "the pipeline has an extractor but no loader",
            pipeline=name,
            fix="pass loader=create_clickhouse_loader('table')",
        )
    if extractor is None and not sql_steps:
        raise ConfigError("the pipeline has no steps", pipeline=name)
    if schedule is not None:
        check_schedule(name, schedule, timezone)

    if getattr(loader, "from_config", False):
        return _op_pipeline(
            name, extractor, loader, wrapped, sql_steps, schedule, timezone, description, tags,
            executor, chunk_rows, schedule_run_config,
        )  # fmt: skip
    return _asset_pipeline(
        name,
        extractor,
        loader,
        wrapped,
        sql_steps,
        schedule=schedule,
        timezone=timezone,
        description=description,
        tags=tags,
        executor=executor,
        chunk_rows=chunk_rows,
        schedule_run_config=schedule_run_config,
        owners=tuple(owners),
        group_name=group_name or name,
        allow_empty_loads=allow_empty_loads,
    )


def _targets(loader: Loader | None, sql_steps: Sequence[SqlStep]) -> tuple[str, ...]:
    targets = [loader.target.qualified] if loader is not None and loader.target else []
    return tuple(targets + [sql.table for sql in sql_steps])


def _asset_pipeline(
    name: str,
    extractor: Extractor | None,
    loader: Loader | None,
    wrapped: Sequence[Transformer],
    sql_steps: Sequence[SqlStep],
    *,
    schedule: str | None,
    timezone: str,
    description: str | None,
    tags: Mapping[str, str] | None,
    executor: str | ExecutorDefinition,
    chunk_rows: int | None,
    schedule_run_config: Mapping[str, Any] | None,
    owners: tuple[str, ...],
    group_name: str,
    allow_empty_loads: bool,
) -> Pipeline:
    default_db = get_settings().clickhouse_database
    text = description or _describe(extractor, wrapped, loader, sql_steps)
    asset_tags = {"dataproc/pipeline": name}
    assets: list[Any] = []
    checks: list[Any] = []
    sources: list[AssetSpec] = []
    previous: AssetKey | None = None
    if extractor is not None and loader is not None:
        source = source_keys(extractor, default_db)
        sources = [
            AssetSpec(
                key,
                description=f"Where pipeline {name} reads: {extractor.describe()}",
                group_name=group_name,
                kinds={extractor.kind} if extractor.kind in SOURCE_KINDS else None,
                tags=asset_tags,
            )
            for key in source
        ]
        target = loader.target
        key = table_key(target.qualified) if target is not None else AssetKey([name])
        kinds = {"clickhouse" if target is not None else "python"}
        kinds |= {"pandas"} if wrapped else set()
        kinds |= {extractor.kind} if extractor.kind in ("http", "metabase") else set()
        extract, transforms, load = _etl_ops(name, extractor, loader, wrapped, chunk_rows)

        def body(upstream: list[Any]) -> Any:
            chunks = extract(source=upstream) if upstream else extract()
            for transform in transforms:
                chunks = transform(chunks=chunks)
            return load(chunks=chunks)

        spec = AssetSpec(
            key,
            description=text,
            group_name=group_name,
            owners=owners,
            kinds=kinds,
            tags=asset_tags,
            metadata={"dagster/table_name": target.qualified} if target is not None else None,
        )
        # The graph must not share the job's name: the asset job's own graph is named after it.
        assets.append(graph_asset_for(f"{name}__etl", body, spec, source))
        load_spec = getattr(loader, "spec", None)
        if target is not None:
            checks.append(
                table_checks(
                    name,
                    TableAsset(
                        key,
                        target.database,
                        target.table,
                        loaded=True,
                        key_columns=tuple(load_spec.key_columns)
                        if load_spec is not None and load_spec.mode == "upsert"
                        else (),
                        allow_empty=allow_empty_loads
                        or bool(load_spec is not None and load_spec.allow_empty_replace),
                        schema_drift=load_spec.schema_drift if load_spec is not None else "freeze",
                    ),
                )
            )
        previous = key
    for index, sql in enumerate(sql_steps, start=1):
        database, table = sql.table.split(".", 1) if "." in sql.table else (default_db, sql.table)
        key = table_key(f"{database}.{table}")
        reads = [table_key(t, default_db) for t in (sql.reads or tables_read(sql.select, database))]
        deps = [k for k in reads if k != key] or ([previous] if previous is not None else [])
        spec = AssetSpec(
            key,
            deps=deps,
            description=f"{sql.describe()} (pipeline {name})",
            group_name=group_name,
            owners=owners,
            kinds={"clickhouse", "sql"},
            tags=asset_tags,
            metadata={"dagster/table_name": f"{database}.{table}"},
        )
        assets.append(make_sql_asset(name, _sql_op_name(name, sql, index), sql, spec))
        checks.append(table_checks(name, TableAsset(key, database, table, loaded=False)))
        previous = key
    keys = [k for a in assets for k in a.keys]
    table_keys = [k for k in keys if k.path[0] == "clickhouse"]
    if schedule and table_keys:
        checks.extend(freshness_checks(table_keys, schedule, timezone))
    check_keys = [ck for c in checks for ck in c.check_keys]
    job = define_asset_job(
        name,
        selection=AssetSelection.assets(*keys).without_checks()
        | AssetSelection.checks(*check_keys),
        description=text,
        tags={"dataproc/pipeline": name, **dict(tags or {})},
        executor_def=_executor(name, executor),
    )
    sched = optional_schedule(job, schedule, timezone, schedule_run_config)
    return Pipeline(
        name=name,
        job=job,
        schedule=sched,
        targets=_targets(loader, sql_steps),
        assets=tuple(assets),
        asset_checks=tuple(checks),
        sources=tuple(sources),
        description=description,
        owners=owners,
    )


def _op_pipeline(
    name: str,
    extractor: Extractor | None,
    loader: Loader | None,
    wrapped: Sequence[Transformer],
    sql_steps: Sequence[SqlStep],
    schedule: str | None,
    timezone: str,
    description: str | None,
    tags: Mapping[str, str] | None,
    executor: str | ExecutorDefinition,
    chunk_rows: int | None,
    schedule_run_config: Mapping[str, Any] | None,
) -> Pipeline:
    """A plain op job, for a pipeline whose target table comes from run config: its load
    step reports the table it wrote as a materialization of ``clickhouse/<db>/<table>``."""
    nodes: list[Any] = []
    deps: dict[Any, dict[str, DependencyDefinition]] = {}
    previous: str | None = None
    if extractor is not None and loader is not None:
        extract, transforms, load = _etl_ops(name, extractor, loader, wrapped, chunk_rows)
        nodes.append(extract)
        previous = extract.name
        for op_def in [*transforms, load]:
            nodes.append(op_def)
            deps[NodeInvocation(op_def.name)] = {"chunks": DependencyDefinition(previous)}
            previous = op_def.name
    for index, sql in enumerate(sql_steps, start=1):
        op_def = make_sql_op(name, _sql_op_name(name, sql, index), sql)
        nodes.append(op_def)
        deps[NodeInvocation(op_def.name)] = (
            {"after": DependencyDefinition(previous)} if previous else {}
        )
        previous = op_def.name

    graph = GraphDefinition(
        name=name,
        node_defs=nodes,
        dependencies=deps,
        description=description or _describe(extractor, wrapped, loader, sql_steps),
    )
    job = graph.to_job(
        name=name,
        tags={"dataproc/pipeline": name, **dict(tags or {})},
        executor_def=_executor(name, executor),
    )
    sched = optional_schedule(job, schedule, timezone, schedule_run_config)
    return Pipeline(
        name=name,
        job=job,
        schedule=sched,
        targets=_targets(loader, sql_steps),
        description=description,
    )


def _etl_ops(
    name: str,
    extractor: Extractor,
    loader: Loader,
    transformers: Sequence[Transformer],
    chunk_rows: int | None,
) -> tuple[OpDefinition, list[OpDefinition], OpDefinition]:
    """The extract, transform and load ops of a pipeline, named ``<pipeline>__<step>``."""
    extract = make_extract_op(
        name, f"{name}__extract", extractor, target=loader.target, chunk_rows=chunk_rows
    )
    transforms = [
        make_transform_op(name, f"{name}__transform_{index}_{_slug(step.name)}", step)
        for index, step in enumerate(transformers, start=1)
    ]
    return extract, transforms, loader.build_op(name, f"{name}__load")


def _sql_op_name(name: str, sql: SqlStep, index: int) -> str:
    return f"{name}__{_slug(sql.name or 'sql_' + sql.table)}_{index}"


def _executor(name: str, executor: str | ExecutorDefinition) -> ExecutorDefinition:
    if isinstance(executor, ExecutorDefinition):
        return executor
    if executor not in EXECUTORS:
        raise ConfigError(
            f"unknown executor {executor!r}",
            pipeline=name,
            fix=f"use one of {', '.join(EXECUTORS)}, or pass an executor definition "
            "(e.g. dagster_k8s.k8s_job_executor)",
        )
    return EXECUTORS[executor]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "step"


def _describe(
    extractor: Extractor | None,
    transformers: Sequence[Transformer],
    loader: Loader | None,
    sql_steps: Sequence[SqlStep],
) -> str:
    parts = []
    if extractor is not None:
        parts.append(extractor.describe())
    parts.extend(f"transform {t.name}" for t in transformers)
    if loader is not None:
        parts.append(loader.describe())
    parts.extend(s.describe() for s in sql_steps)
    return " -> ".join(parts)
