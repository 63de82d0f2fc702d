"""The code location's one ``Definitions`` object: pipelines, generic jobs, resources.

Pipelines come from two places: Python modules in ``pipelines/`` (the registry) and YAML
components in dg's definitions folder ``component_defs/`` (``EtlPipelineComponent``). Loading
opens no connection: resources connect inside steps only, so a running webserver or code server
never holds the embedded ClickHouse directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from dagster import AssetKey, AssetsDefinition, AssetSpec, Definitions

from dataproc_dagster.components.discovery import load_component_defs
from dataproc_dagster.core.environment import restore_process_environment
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.integrity import job as integrity_job
from dataproc_dagster.migrations import job as migrations_job
from dataproc_dagster.observability.logging import configure_logging
from dataproc_dagster.pipeline.jobs import Pipeline
from dataproc_dagster.pipeline.registry import discover_pipelines
from dataproc_dagster.resources import build_resources, register_resource_secrets
from dataproc_dagster.sources.http import job as http_job
from dataproc_dagster.sources.metabase import job as metabase_job

# The generic and operational jobs; each module may expose JOBS, SCHEDULES, ASSETS,
# ASSET_CHECKS and SENSORS lists.
JOB_MODULES: tuple[ModuleType, ...] = (http_job, metabase_job, migrations_job, integrity_job)


def _collect_job_modules() -> dict[str, list[Any]]:
    collected: dict[str, list[Any]] = {
        "JOBS": [],
        "SCHEDULES": [],
        "ASSETS": [],
        "ASSET_CHECKS": [],
        "SENSORS": [],
    }
    for module in JOB_MODULES:
        for key, items in collected.items():
            items.extend(getattr(module, key, []))
    return collected


def pipeline_assets(pipelines: Sequence[Pipeline]) -> tuple[list[Any], list[Any]]:
    """The pipelines' assets (sources first) and asset checks.

    A source that another pipeline materializes (a ClickHouse table read by a second
    pipeline) is that pipeline's asset, not an external one; a source two pipelines read is
    listed once.
    """
    materialized = {key for p in pipelines for key in p.asset_keys}
    sources: dict[AssetKey, AssetSpec] = {}
    for pipeline in pipelines:
        for spec in pipeline.sources:
            if spec.key not in materialized and spec.key not in sources:
                sources[spec.key] = spec
    assets = [*sources.values(), *(a for p in pipelines for a in p.assets)]
    return assets, [c for p in pipelines for c in p.asset_checks]


def check_pipeline_names(pipelines: Sequence[Pipeline]) -> None:
    """Refuse two pipelines of one name (a Python module and a YAML folder, say).

    Raises:
        ConfigError: Naming both places.
    """
    seen: dict[str, Pipeline] = {}
    for pipeline in pipelines:
        first = seen.setdefault(pipeline.name, pipeline)
        if first is not pipeline:
            raise ConfigError(
                f"duplicate pipeline name {pipeline.name!r}: defined in {first.module} and in "
                f"{pipeline.module}",
                fix="give each pipeline its own name",
            )


def without_shadowed_sources(defs: Definitions) -> Definitions:
    """``defs`` without the external source assets another pipeline materializes or an
    earlier one already lists (the rule of :func:`pipeline_assets`, across Python and YAML)."""
    assets = list(defs.assets or [])
    materialized = {k for a in assets if isinstance(a, AssetsDefinition) for k in a.keys}
    kept: list[Any] = []
    listed: set[AssetKey] = set()
    for asset in assets:
        if isinstance(asset, AssetSpec):
            if asset.key in materialized or asset.key in listed:
                continue
            listed.add(asset.key)
        kept.append(asset)
    return Definitions(
        assets=kept,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        metadata=defs.metadata,
        component_tree=defs.component_tree,
    )


def build_definitions() -> Definitions:
    """Assemble every pipeline, job, schedule, asset and resource of the code location."""
    # Dagster's CLI copied .env over the process environment; the environment wins.
    restore_process_environment()
    settings = get_settings()
    resources = build_resources(settings)
    # LOG_LEVEL and secret masking, in every process that loads the code location.
    register_resource_secrets(resources)
    configure_logging(settings)
    pipelines = discover_pipelines()
    component_defs, yaml_pipelines = load_component_defs()
    check_pipeline_names([*pipelines, *yaml_pipelines])
    extra = _collect_job_modules()
    assets, checks = pipeline_assets(pipelines)
    python_defs = Definitions(
        jobs=[p.job for p in pipelines] + extra["JOBS"],
        schedules=[p.schedule for p in pipelines if p.schedule is not None] + extra["SCHEDULES"],
        assets=assets + extra["ASSETS"],
        asset_checks=checks + extra["ASSET_CHECKS"],
        sensors=extra["SENSORS"],
        resources=resources,
    )
    return without_shadowed_sources(Definitions.merge(python_defs, component_defs))


defs = build_definitions()
