"""The ``dg`` definitions folder: one sub-folder per component, each with a ``defs.yaml``.

``dg scaffold defs dataproc_dagster.components.EtlPipelineComponent NAME`` adds a pipeline
here; ``definitions.py`` loads the folder beside the Python pipelines of ``pipelines/``. It is
not named ``defs``: a ``dataproc_dagster.defs`` package would hide the package's ``defs``
attribute that ``dagster ... -m dataproc_dagster`` loads (docs/architecture.md).
"""
