"""The pipeline registry: discovers pipeline modules under ``dataproc_dagster/pipelines/``.

A pipeline module defines one or more :class:`~dataproc_dagster.pipeline.jobs.Pipeline`
objects at module level (``pipeline = create_etl_pipeline(...)``). A module that fails to import,
or two pipelines with the same name, fail loading with a message naming the module.

The module also describes its pipelines' assets: ``OWNERS`` (``["team:data", "a@b.org"]``)
become the owners of every asset of a pipeline that names none, and the module's docstring is
the description of a pipeline given none.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Any

from dagster import AssetSpec

from dataproc_dagster.core.environment import restore_process_environment
from dataproc_dagster.core.errors import ConfigError, DataprocError
from dataproc_dagster.pipeline.jobs import Pipeline

PIPELINES_PACKAGE = "dataproc_dagster.pipelines"


def pipelines_in(module: ModuleType) -> list[Pipeline]:
    """The pipelines a module defines at module level."""
    found = [value for value in vars(module).values() if isinstance(value, Pipeline)]
    listed = getattr(module, "PIPELINES", None)
    if listed:
        found.extend(p for p in listed if isinstance(p, Pipeline) and p not in found)
    return found


def discover_pipelines(package: str = PIPELINES_PACKAGE) -> list[Pipeline]:
    """Import every module of ``package`` and collect its pipelines, sorted by name.

    The process environment is restored over ``.env`` first (see
    :func:`~dataproc_dagster.core.environment.restore_process_environment`).

    Raises:
        ConfigError: Naming the module that fails to import or repeats a pipeline name.
    """
    # A pipeline module may read its settings when it is imported: the environment must win
    # over the .env values Dagster's command line copied over it before that happens.
    restore_process_environment()
    root = importlib.import_module(package)
    found: dict[str, Pipeline] = {}
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module_name = f"{package}.{info.name}"
        try:
            module = importlib.import_module(module_name)
        except DataprocError as exc:
            raise ConfigError(
                f"pipeline module {module_name} is invalid: {exc}",
                fix=f"correct {module_name.replace('.', '/')}.py",
            ) from exc
        except Exception as exc:
            raise ConfigError(
                f"pipeline module {module_name} failed to import: {type(exc).__name__}: {exc}",
                fix=f"correct {module_name.replace('.', '/')}.py or move it out of {package}",
            ) from exc
        for pipeline in pipelines_in(module):
            if pipeline.name in found:
                raise ConfigError(
                    f"duplicate pipeline name {pipeline.name!r}: defined in "
                    f"{found[pipeline.name].module} and in {module_name}",
                    fix="give each pipeline its own name",
                )
            object.__setattr__(pipeline, "module", module_name)
            _apply_module_facts(pipeline, module)
            found[pipeline.name] = pipeline
    return [found[name] for name in sorted(found)]


def _apply_module_facts(pipeline: Pipeline, module: ModuleType) -> None:
    """Owners from ``OWNERS`` and the description from the docstring, where the pipeline
    did not set them itself."""
    owners = list(getattr(module, "OWNERS", []) or [])
    doc = inspect.cleandoc(module.__doc__ or "")
    description = doc if pipeline.description is None and doc else None
    if not pipeline.assets or (not (owners and not pipeline.owners) and description is None):
        return

    def update(spec: AssetSpec) -> AssetSpec:
        changes: dict[str, Any] = {}
        if owners and not spec.owners:
            changes["owners"] = owners
        if description is not None and spec.key in primary:
            changes["description"] = description
        return spec.replace_attributes(**changes) if changes else spec

    primary = set(pipeline.assets[0].keys)
    assets = tuple(a.map_asset_specs(update) for a in pipeline.assets)
    object.__setattr__(pipeline, "assets", assets)
    if owners and not pipeline.owners:
        object.__setattr__(pipeline, "owners", tuple(owners))
    if description is not None:  # applied once, however often the pipelines are discovered
        object.__setattr__(pipeline, "description", description)
