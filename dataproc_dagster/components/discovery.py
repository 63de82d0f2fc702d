"""Loading dg's definitions folder: its components' definitions and the YAML pipelines.

The folder's counterpart of :func:`~dataproc_dagster.pipeline.registry.discover_pipelines`:
the code location merges both, and the integrity checks cover the tables of both.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

from dagster import BetaWarning, ComponentTree, Definitions, PreviewWarning
from pydantic import PydanticDeprecatedSince20

from dataproc_dagster.components.etl_pipeline import EtlPipelineComponent
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.pipeline.jobs import Pipeline

# dg's definitions folder ([tool.dg.project] defs_module in pyproject.toml).
COMPONENT_DEFS_PACKAGE = "dataproc_dagster.component_defs"


def load_component_defs(
    package: str = COMPONENT_DEFS_PACKAGE,
) -> tuple[Definitions, list[Pipeline]]:
    """The definitions of every component in the definitions folder ``package``, and the
    pipelines among them (``EtlPipelineComponent``).

    Raises:
        Exception: Dagster's error for a ``defs.yaml`` that does not load, naming the file,
            the line and the field.
    """
    module = importlib.import_module(package)
    # The folder holding the top-level package (the repository, or site-packages).
    root = Path(module.__file__ or ".").resolve().parents[len(package.split("."))]
    tree = ComponentTree.from_module(defs_module=module, project_root=root)
    with warnings.catch_warnings():
        # Dagster marks the code references it adds to YAML components' assets beta, and
        # its loading of the folder's Python modules preview; it parses YAML with a pydantic
        # function deprecated since pydantic 2.
        warnings.simplefilter("ignore", BetaWarning)
        warnings.simplefilter("ignore", PreviewWarning)
        warnings.simplefilter("ignore", PydanticDeprecatedSince20)
        defs = tree.build_defs()
    pipelines = [p for c in tree.get_all_components(EtlPipelineComponent) for p in c.pipelines]
    return defs, pipelines


def discover_yaml_pipelines(package: str = COMPONENT_DEFS_PACKAGE) -> list[Pipeline]:
    """The YAML pipelines of the definitions folder ``package``, sorted by name.

    Raises:
        ConfigError: When the folder does not load, with Dagster's message (the file, the line
            and the field).
    """
    try:
        _, pipelines = load_component_defs(package)
    except Exception as exc:
        cause = f"\n{exc.__cause__}" if exc.__cause__ is not None else ""
        raise ConfigError(
            f"the definitions folder {package} does not load: {exc}{cause}",
            fix="correct the defs.yaml named above (`dg check yaml`, `dg check defs`)",
        ) from exc
    return sorted(pipelines, key=lambda p: p.name)
