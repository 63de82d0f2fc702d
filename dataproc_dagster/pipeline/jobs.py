"""A pipeline's Dagster objects: its assets, checks and asset job, or an op job.

:func:`~dataproc_dagster.pipeline.factory.create_etl_pipeline` checks its arguments and hands them
here as :class:`PipelineParts`.
"""

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
from dataproc_dagster.core.modes import DriftPolicy, WriteMode
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
from dataproc_dagster.pipeline.partitions import (
    PartitionPlan,
    make_window_guard_op,
    partitioned_schedule,
    summary_to_nowhere,
)
from dataproc_dagster.pipeline.schedules import optional_schedule
from dataproc_dagster.pipeline.sql_steps import SqlStep, make_sql_asset, make_sql_op
from dataproc_dagster.pipeline.steps import make_extract_op, make_transform_op
from dataproc_dagster.pipeline.transformers import Transformer

if TYPE_CHECKING:
    # What define_asset_job returns; Dagster exports no public name for the type.
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

EXECUTORS: dict[str, ExecutorDefinition] = {
    "in_process": in_process_executor,
    "multiprocess": multiprocess_executor,
}


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


@dataclass(frozen=True)
class PipelineParts:
    """What ``create_etl_pipeline`` was given, checked, for the asset or op job builder."""

    name: str
    extractor: Extractor | None
    loader: Loader | None
    transformers: Sequence[Transformer]
    sql_steps: Sequence[SqlStep]
    schedule: str | None
    timezone: str
    description: str | None
    tags: Mapping[str, str] | None
    executor: str | ExecutorDefinition
    chunk_rows: int | None
    schedule_run_config: Mapping[str, Any] | None
    owners: tuple[str, ...]
    group_name: str
    allow_empty_loads: bool
    partitioning: PartitionPlan | None = None

    @property
    def text(self) -> str:
        """The description, or one made of the steps."""
        return self.description or _describe(
            self.extractor, self.transformers, self.loader, self.sql_steps
        )

    @property
    def job_tags(self) -> dict[str, str]:
        """The job's tags: the pipeline's name and the tags it was given."""
        return {"dataproc/pipeline": self.name, **dict(self.tags or {})}

    @property
    def executor_def(self) -> ExecutorDefinition:
        """The executor the ``executor`` argument names (or is)."""
        return _executor(self.name, self.executor)

    @property
    def targets(self) -> tuple[str, ...]:
        """The loader's target, then each SQL step's table."""
        loader = self.loader
        targets = [loader.target.qualified] if loader is not None and loader.target else []
        return tuple(targets + [sql.table for sql in self.sql_steps])


def build_asset_pipeline(parts: PipelineParts) -> Pipeline:
    default_db = get_settings().clickhouse_database
    text = parts.text
    asset_tags = {"dataproc/pipeline": parts.name}
    assets: list[Any] = []
    checks: list[Any] = []
    sources: list[AssetSpec] = []
    previous: AssetKey | None = None
    extractor, loader = parts.extractor, parts.loader
    plan = parts.partitioning
    partitions = plan.partitions if plan is not None else None
    if extractor is not None and loader is not None:
        source = source_keys(extractor, default_db)
        sources = [
            AssetSpec(
                key,
                description=f"Where pipeline {parts.name} reads: {extractor.describe()}",
                group_name=parts.group_name,
                kinds={extractor.kind} if extractor.kind in SOURCE_KINDS else None,
                tags=asset_tags,
            )
            for key in source
        ]
        target = loader.target
        key = table_key(target.qualified) if target is not None else AssetKey([parts.name])
        kinds = {"clickhouse" if target is not None else "python"}
        kinds |= {"pandas"} if parts.transformers else set()
        kinds |= {extractor.kind} if extractor.kind in ("http", "metabase") else set()
        extract, transforms, load = _etl_ops(
            parts.name, extractor, loader, parts.transformers, parts.chunk_rows
        )
        if plan is not None:
            guard = make_window_guard_op(parts.name, f"{parts.name}__window", plan.guard)
            transforms = [*transforms, guard]
            load = summary_to_nowhere(load)

        def body(upstream: list[Any]) -> Any:
            chunks = extract(source=upstream) if upstream else extract()
            for transform in transforms:
                chunks = transform(chunks=chunks)
            return load(chunks=chunks)

        spec = AssetSpec(
            key,
            description=text,
            group_name=parts.group_name,
            owners=parts.owners,
            kinds=kinds,
            tags=asset_tags,
            metadata={"dagster/table_name": target.qualified} if target is not None else None,
        )
        # The graph must not share the job's name: the asset job's own graph is named after it.
        assets.append(
            graph_asset_for(
                f"{parts.name}__etl",
                body,
                spec,
                source,
                partitions_def=partitions,
                backfill_policy=plan.backfill_policy if plan is not None else None,
            )
        )
        load_spec = getattr(loader, "spec", None)
        if target is not None:
            checks.append(
                table_checks(
                    parts.name,
                    TableAsset(
                        key,
                        target.database,
                        target.table,
                        loaded=True,
                        key_columns=tuple(load_spec.key_columns)
                        if load_spec is not None and load_spec.mode == WriteMode.UPSERT
                        else (),
                        allow_empty=parts.allow_empty_loads
                        or bool(load_spec is not None and load_spec.allow_empty_replace),
                        schema_drift=load_spec.schema_drift
                        if load_spec is not None
                        else DriftPolicy.FREEZE,
                        partitions=partitions,
                        time_column=plan.guard.time_column if plan is not None else None,
                    ),
                )
            )
        previous = key
    for index, sql in enumerate(parts.sql_steps, start=1):
        database, table = sql.table.split(".", 1) if "." in sql.table else (default_db, sql.table)
        key = table_key(f"{database}.{table}")
        reads = [table_key(t, default_db) for t in (sql.reads or tables_read(sql.select, database))]
        deps = [k for k in reads if k != key] or ([previous] if previous is not None else [])
        spec = AssetSpec(
            key,
            deps=deps,
            description=f"{sql.describe()} (pipeline {parts.name})",
            group_name=parts.group_name,
            owners=parts.owners,
            kinds={"clickhouse", "sql"},
            tags=asset_tags,
            metadata={"dagster/table_name": f"{database}.{table}"},
            partitions_def=partitions,
        )
        sql_asset = make_sql_asset(parts.name, _sql_op_name(parts.name, sql, index), sql, spec)
        if plan is not None and plan.backfill_policy is not None:
            # One backfill policy per job: a range run rebuilds the SQL table once.
            sql_asset = sql_asset.with_attributes(backfill_policy=plan.backfill_policy)
        assets.append(sql_asset)
        checks.append(
            table_checks(
                parts.name, TableAsset(key, database, table, loaded=False, partitions=partitions)
            )
        )
        previous = key
    keys = [k for a in assets for k in a.keys]
    table_keys = [k for k in keys if k.path[0] == "clickhouse"]
    if parts.schedule and table_keys and partitions is None:
        checks.extend(freshness_checks(table_keys, parts.schedule, parts.timezone))
    check_keys = [ck for c in checks for ck in c.check_keys]
    job = define_asset_job(
        parts.name,
        selection=AssetSelection.assets(*keys).without_checks()
        | AssetSelection.checks(*check_keys),
        description=text,
        tags=parts.job_tags,
        executor_def=parts.executor_def,
    )
    if partitions is not None:
        sched = partitioned_schedule(job, parts.schedule, parts.schedule_run_config)
    else:
        sched = optional_schedule(job, parts.schedule, parts.timezone, parts.schedule_run_config)
    return Pipeline(
        name=parts.name,
        job=job,
        schedule=sched,
        targets=parts.targets,
        assets=tuple(assets),
        asset_checks=tuple(checks),
        sources=tuple(sources),
        description=parts.description,
        owners=parts.owners,
    )


def build_op_pipeline(parts: PipelineParts) -> Pipeline:
    """A plain op job, for a pipeline whose target table comes from run config: its load
    step reports the table it wrote as a materialization of ``clickhouse/<db>/<table>``."""
    nodes: list[Any] = []
    deps: dict[Any, dict[str, DependencyDefinition]] = {}
    previous: str | None = None
    extractor, loader = parts.extractor, parts.loader
    if extractor is not None and loader is not None:
        extract, transforms, load = _etl_ops(
            parts.name, extractor, loader, parts.transformers, parts.chunk_rows
        )
        nodes.append(extract)
        previous = extract.name
        for op_def in [*transforms, load]:
            nodes.append(op_def)
            deps[NodeInvocation(op_def.name)] = {"chunks": DependencyDefinition(previous)}
            previous = op_def.name
    for index, sql in enumerate(parts.sql_steps, start=1):
        op_def = make_sql_op(parts.name, _sql_op_name(parts.name, sql, index), sql)
        nodes.append(op_def)
        deps[NodeInvocation(op_def.name)] = (
            {"after": DependencyDefinition(previous)} if previous else {}
        )
        previous = op_def.name

    graph = GraphDefinition(
        name=parts.name,
        node_defs=nodes,
        dependencies=deps,
        description=parts.text,
    )
    job = graph.to_job(
        name=parts.name,
        tags=parts.job_tags,
        executor_def=parts.executor_def,
    )
    sched = optional_schedule(job, parts.schedule, parts.timezone, parts.schedule_run_config)
    return Pipeline(
        name=parts.name,
        job=job,
        schedule=sched,
        targets=parts.targets,
        description=parts.description,
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
