"""dataproc-dagster: ClickHouse ETL as a Dagster code location.

Public API (the original framework's vocabulary, in Dagster form)::

    from dataproc_dagster import (
        create_etl_pipeline, create_http_extractor, create_clickhouse_extractor,
        create_metabase_extractor, create_file_extractor, create_extractor,
        create_transformer, create_clickhouse_loader, create_loader, create_sql_step,
    )
"""

from dataproc_dagster.factory import Pipeline, create_etl_pipeline
from dataproc_dagster.observability import measure_step
from dataproc_dagster.ops.elt import create_sql_step
from dataproc_dagster.ops.extractors.clickhouse import create_clickhouse_extractor
from dataproc_dagster.ops.extractors.custom import create_extractor
from dataproc_dagster.ops.extractors.file import create_file_extractor
from dataproc_dagster.ops.extractors.http import create_http_extractor
from dataproc_dagster.ops.extractors.metabase import create_metabase_extractor
from dataproc_dagster.ops.loaders.clickhouse import create_clickhouse_loader
from dataproc_dagster.ops.loaders.custom import create_loader
from dataproc_dagster.ops.transformers import create_transformer

__all__ = [
    "Pipeline",
    "create_clickhouse_extractor",
    "create_clickhouse_loader",
    "create_etl_pipeline",
    "create_extractor",
    "create_file_extractor",
    "create_http_extractor",
    "create_loader",
    "create_metabase_extractor",
    "create_sql_step",
    "create_transformer",
    "measure_step",
]


def __getattr__(name: str) -> object:
    # The Definitions are built on first access: importing the library (pipeline modules,
    # tests, the CLIs) does not discover and build every job. Dagster finds ``defs`` through
    # ``dir()``, which lists it.
    if name == "defs":
        from dataproc_dagster.definitions import defs

        return defs
    raise AttributeError(f"module 'dataproc_dagster' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
