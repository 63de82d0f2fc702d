"""``EtlPipelineComponent``: a pipeline written in ``defs.yaml``, built by ``create_etl_pipeline``.

The component's attributes are the arguments of ``create_etl_pipeline``, with the building
blocks as YAML blocks (:mod:`dataproc_dagster.components.models`). ``build_pipeline`` hands
them to the same factories a Python pipeline module calls, so the YAML and Python forms of a
pipeline are the same assets, checks, job and schedule.

Template values (``{{ env.NAME }}``, ``{{ context.project_root }}``) are rendered in text
fields when the component loads, except ``auth.secret``: that stays the *name* of its variable,
which the extract step reads when it runs, so a secret is never part of the definitions; and a
Metabase ``native_query``, whose ``{{name}}`` are Metabase's variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Self

from dagster import (
    Component,
    ComponentLoadContext,
    Definitions,
    Model,
    ResolutionContext,
    Resolvable,
    scaffold_with,
)
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from dataproc_dagster.components.models import (
    LoaderBlock,
    PartitionsBlock,
    SourceBlock,
    SqlStepBlock,
    TransformerBlock,
    checked,
    import_object,
    is_template,
    to_transformer,
    unset,
    verbatim_paths,
)
from dataproc_dagster.components.scaffolder import EtlPipelineScaffolder
from dataproc_dagster.core.errors import ConfigError, DataprocError
from dataproc_dagster.pipeline.factory import create_etl_pipeline
from dataproc_dagster.pipeline.jobs import Pipeline
from dataproc_dagster.pipeline.schedules import check_schedule


@scaffold_with(EtlPipelineScaffolder)
class EtlPipelineComponent(Component, Resolvable, Model):
    """A pipeline into ClickHouse written in YAML, built exactly as create_etl_pipeline builds
    it: a source (http, clickhouse, metabase or file), transformers named by import path, a
    loader (table, mode, keys, order, partitioning, drift policy), SQL steps, a schedule.

    It makes the same Dagster objects as a Python pipeline module: the loaded table's asset
    with its checks, one asset per SQL step, the source as an external asset, the job named
    after the pipeline and its schedule. Secrets are only written as '{{ env.NAME }}' and read
    when the step runs. See docs/extending.md, "Pipelines in YAML".
    """

    name: str | None = unset(
        description="Pipeline and job name (letters, digits, underscores); default: the "
        "folder holding this defs.yaml",
    )
    description: str | None = unset(description="Shown on the job and assets")
    source: SourceBlock | None = unset(
        description="Where rows come from; none for a pipeline of SQL steps only"
    )
    transformers: list[str | TransformerBlock] = Field(
        default=[],
        description="Applied to every chunk, in order: import paths of fn(df) -> df, or "
        "blocks with function, name, output_type and arrow",
    )
    loader: LoaderBlock | None = unset(
        description="The ClickHouse table the rows go to (needed with a source)"
    )
    sql_steps: list[SqlStepBlock] = Field(
        default=[], description="Tables rebuilt from a SELECT inside ClickHouse after the load"
    )
    schedule: str | None = unset(description="Cron string, e.g. '0 6 * * *'; none for no schedule")
    timezone: str = Field(default="UTC", description="The schedule's IANA time zone")
    partitions: PartitionsBlock | None = unset(
        description="One run per day, hour, week, month or key: daily, hourly, weekly, "
        "monthly ({start: '2024-01-01'}) or static ([north, south]); docs/partitions.md"
    )
    time_column: str | None = unset(
        description="Partitioned: the rows' time column; rows outside the run's window fail "
        "the run, and replace_partitions derives PARTITION BY from it"
    )
    backfill_policy: Literal["single_run", "multi_run"] | None = unset(
        description="Partitioned: single_run (a backfilled range in one run) or multi_run "
        "(one run per partition, the default)"
    )
    owners: list[str] = Field(
        default=[], description="Owners of the assets: team:name or e-mail addresses"
    )
    group: str | None = unset(description="Asset group (default: the name)")
    tags: dict[str, str] = Field(default={}, description="Job tags")
    executor: str = Field(default="in_process", description="in_process or multiprocess")
    chunk_rows: int | None = unset(description="Rows per chunk between steps")
    allow_empty_loads: bool = Field(
        default=False, description="A load of no rows passes the rows_loaded check"
    )
    # What build_defs built, by the folder of its defs.yaml.
    _built: dict[str, Pipeline] = PrivateAttr(default_factory=dict)

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and not is_template(value):
            checked(lambda: check_schedule("yaml", value, "UTC"))
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        if not is_template(value):
            checked(lambda: check_schedule("yaml", "0 0 * * *", value))
        return value

    @field_validator("transformers")
    @classmethod
    def _importable(cls, items: list[str | TransformerBlock]) -> list[str | TransformerBlock]:
        for index, item in enumerate(items):
            if isinstance(item, str) and not is_template(item):
                import_object(item, f"transformers[{index}]")
        return items

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.source is not None and self.loader is None:
            raise ValueError("a pipeline with a source needs a loader: add loader: {table: ...}")
        if self.source is None and (self.loader is not None or self.transformers):
            raise ValueError("a loader or transformers need a source: add source: {http: ...}")
        if self.source is None and not self.sql_steps:
            raise ValueError("the pipeline has no steps: add a source and a loader, or sql_steps")
        return self

    @classmethod
    def model(cls) -> type[Model]:
        """The attributes' schema is the component's own strict model (no template strings in
        place of blocks), so ``dg check yaml`` names the field of a typo or a wrong choice."""
        return cls

    @classmethod
    def resolve_from_model(cls, context: ResolutionContext, model: Any) -> Self:
        """Render templates in text fields (never in ``auth.secret``) and validate again."""
        raw = model.model_dump(exclude_unset=True, by_alias=True)
        rendered = _render(context, raw, verbatim_paths(raw), ())
        try:
            return cls.model_validate(rendered)
        except ValidationError as exc:
            raise ConfigError(
                f"invalid value once its templates were rendered:\n{exc}",
                source=_where(context),
                fix="check the values the {{ ... }} templates of these fields produce",
            ) from None

    def build_pipeline(self, context: ComponentLoadContext) -> Pipeline:
        """The pipeline, built by ``create_etl_pipeline`` from the blocks."""
        folder = context.path
        module = context.defs_relative_module_name(folder)
        where = "/".join(module.split(".")) + "/defs.yaml"
        try:
            pipeline = self._create(folder)
        except DataprocError as exc:
            raise ConfigError(
                exc.message, pipeline=exc.pipeline, source=where, fix=exc.fix
            ) from exc
        # Where it is defined, for messages (a Python pipeline's is its module).
        return replace(pipeline, module=where)

    def _create(self, folder: Path) -> Pipeline:
        """``create_etl_pipeline`` with the blocks' building blocks (paths from ``folder``)."""
        partitions = self.partitions.to_partitions(self.timezone) if self.partitions else None
        return create_etl_pipeline(
            name=self.name or folder.name,
            extractor=self.source.to_extractor(folder) if self.source is not None else None,
            loader=self.loader.to_loader() if self.loader is not None else None,
            transformers=[to_transformer(item) for item in self.transformers],
            sql_steps=[step.to_sql_step() for step in self.sql_steps],
            schedule=self.schedule,
            timezone=self.timezone,
            description=self.description,
            tags=self.tags or None,
            executor=self.executor,
            chunk_rows=self.chunk_rows,
            owners=self.owners,
            group_name=self.group,
            allow_empty_loads=self.allow_empty_loads,
            partitions=partitions,
            time_column=self.time_column,
            backfill_policy=self.backfill_policy,
        )

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        """The pipeline's assets (its sources as external assets), checks, job and schedule.

        The built pipeline is kept on the component (``pipelines``), where the code location
        finds it to check names across Python and YAML pipelines and for the integrity checks.
        """
        pipeline = self.build_pipeline(context)
        self._built[str(context.path)] = pipeline
        return definitions_of(pipeline)

    @property
    def pipelines(self) -> list[Pipeline]:
        """The pipelines built so far by ``build_defs`` (one per load context)."""
        return list(self._built.values())


def definitions_of(pipeline: Pipeline) -> Definitions:
    """One pipeline's Dagster objects."""
    return Definitions(
        assets=[*pipeline.sources, *pipeline.assets],
        asset_checks=list(pipeline.asset_checks),
        jobs=[pipeline.job],
        schedules=[pipeline.schedule] if pipeline.schedule is not None else [],
    )


def _render(
    context: ResolutionContext,
    value: Any,
    secrets: set[tuple[str, ...]],
    path: tuple[str, ...],
) -> Any:
    """``value`` with templates rendered, leaving the paths in ``secrets`` as written."""
    if path in secrets:
        return value
    if isinstance(value, Mapping):
        return {k: _render(context, v, secrets, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(context, v, secrets, (*path, str(i))) for i, v in enumerate(value)]
    if is_template(value):
        scoped = context
        for part in path:
            scoped = scoped.at_path(int(part) if part.isdigit() else part)
        return scoped.resolve_value(value)
    return value


def _where(context: ResolutionContext) -> str:
    tree = context.source_position_tree
    return tree.position.filename if tree is not None else "defs.yaml"
