"""The pipeline registry: discovers pipeline modules under ``dataproc_dagster/pipelines/``.

A pipeline module defines one or more :class:`~dataproc_dagster.pipeline.jobs.Pipeline`
objects at module level (``pipeline = create_etl_pipeline(...)``). Two pipelines with the same
name fail loading with a message naming both modules. A module that fails to import fails
:func:`discover_pipelines`; the code location loads with :func:`discover`, which leaves the
module out and reports it, so one broken module does not stop the other pipelines, except under
``dagster definitions validate`` / ``dg check defs`` (:func:`strict_loading`), where it fails.

The module also describes its pipelines' assets: ``OWNERS`` (``["team:data", "a@b.org"]``)
become the owners of every asset of a pipeline that names none, and the module's docstring is
the description of a pipeline given none.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from dagster import AssetSpec

from dataproc_dagster.core.environment import restore_process_environment
from dataproc_dagster.core.errors import ConfigError, DataprocError
from dataproc_dagster.pipeline.jobs import Pipeline

PIPELINES_PACKAGE = "dataproc_dagster.pipelines"
# Set by `dagster definitions validate` and `dg check defs`; DATAPROC_STRICT_PIPELINES=1 too.
VALIDATION_VARIABLES = ("DAGSTER_IS_DEFS_VALIDATION_CLI", "DATAPROC_STRICT_PIPELINES")


@dataclass(frozen=True)
class BrokenModule:
    """A pipeline module that failed to import.

    Attributes:
        module: The module's dotted name.
        error: The error naming the module, with its fix.
    """

    module: str
    error: ConfigError

    @property
    def message(self) -> str:
        """What went wrong, one line."""
        return self.error.message

    @property
    def fix(self) -> str:
        """What to do."""
        return self.error.fix or ""


def strict_loading() -> bool:
    """True under ``dagster definitions validate`` and ``dg check defs`` (or with
    ``DATAPROC_STRICT_PIPELINES=1``): a broken pipeline module fails the code location."""
    return any(os.environ.get(name) == "1" for name in VALIDATION_VARIABLES)


def pipelines_in(module: ModuleType) -> list[Pipeline]:
    """The pipelines a module defines at module level."""
    found = [value for value in vars(module).values() if isinstance(value, Pipeline)]
    listed = getattr(module, "PIPELINES", None)
    if listed:
        found.extend(p for p in listed if isinstance(p, Pipeline) and p not in found)
    return found


def discover_pipelines(package: str = PIPELINES_PACKAGE) -> list[Pipeline]:
    """Every pipeline of ``package``, sorted by name (see :func:`discover`).

    Raises:
        ConfigError: Naming the first module that fails to import or repeats a pipeline name.
    """
    pipelines, broken = discover(package)
    if broken:
        raise broken[0].error
    return pipelines


def discover(package: str = PIPELINES_PACKAGE) -> tuple[list[Pipeline], list[BrokenModule]]:
    """Import every module of ``package`` and collect its pipelines, sorted by name; the
    modules that fail to import are returned apart.

    The process environment is restored over ``.env`` first (see
    :func:`~dataproc_dagster.core.environment.restore_process_environment`).

    Raises:
        ConfigError: Naming the modules that repeat a pipeline name.
    """
    # A pipeline module may read its settings when it is imported: the environment must win
    # over the .env values Dagster's command line copied over it before that happens.
    restore_process_environment()
    root = importlib.import_module(package)
    found: dict[str, Pipeline] = {}
    broken: list[BrokenModule] = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module_name = f"{package}.{info.name}"
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            broken.append(BrokenModule(module_name, _import_error(module_name, package, exc)))
            continue
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
    return [found[name] for name in sorted(found)], broken


def _import_error(module_name: str, package: str, exc: Exception) -> ConfigError:
    """The error naming a pipeline module that failed to import (chained to the cause)."""
    path = f"{module_name.replace('.', '/')}.py"
    if isinstance(exc, DataprocError):
        error = ConfigError(
            f"pipeline module {module_name} is invalid: {exc}", fix=f"correct {path}"
        )
    else:
        error = ConfigError(
            f"pipeline module {module_name} failed to import: {type(exc).__name__}: {exc}",
            fix=f"correct {path} or move it out of {package}",
        )
    error.__cause__ = exc
    return error


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
