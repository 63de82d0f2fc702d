"""Dagster component types of dataproc-dagster, for ``dg`` (the registry module).

The ``dagster_dg_cli.registry_modules`` entry point in ``pyproject.toml`` names this module, so
``dg list components`` lists ``dataproc_dagster.components.EtlPipelineComponent`` and ``dg
scaffold defs`` writes one into the definitions folder (``dataproc_dagster/component_defs/``).
Importing it builds no definitions: it is not the package root, whose ``defs`` attribute
would load the whole code location each time ``dg`` lists the registry.
"""

from dataproc_dagster.components.etl_pipeline import EtlPipelineComponent

__all__ = ["EtlPipelineComponent"]
