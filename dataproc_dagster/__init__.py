"""dataproc-dagster: ClickHouse ETL as a Dagster code location.

Everything a pipeline author writes imports from here::

    from dataproc_dagster import (
        create_etl_pipeline, create_http_extractor, create_clickhouse_loader,
        bearer, link_header, Incremental, HttpRetryPolicy, ConfigError, SourceError,
    )
"""

import importlib
from typing import TYPE_CHECKING

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.environment import setting
from dataproc_dagster.core.errors import (
    ConfigError,
    DataprocError,
    LoadError,
    LockTimeoutError,
    SchemaError,
    SourceError,
)
from dataproc_dagster.core.modes import DriftPolicy, WriteMode
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.loading.custom import create_loader
from dataproc_dagster.loading.loader import create_clickhouse_loader
from dataproc_dagster.migrations.runner import ClickHouseMigrationManager
from dataproc_dagster.observability.metrics import measure_step
from dataproc_dagster.pipeline.factory import create_etl_pipeline
from dataproc_dagster.pipeline.jobs import Pipeline
from dataproc_dagster.pipeline.partitions import (
    daily_partitions,
    hourly_partitions,
    monthly_partitions,
    static_partitions,
    weekly_partitions,
)
from dataproc_dagster.pipeline.sql_steps import create_sql_step
from dataproc_dagster.pipeline.transformers import create_transformer
from dataproc_dagster.pipeline.window import PartitionWindow
from dataproc_dagster.sources.clickhouse import create_clickhouse_extractor
from dataproc_dagster.sources.custom import create_extractor
from dataproc_dagster.sources.files import create_file_extractor
from dataproc_dagster.sources.http.auth import api_key, basic, bearer
from dataproc_dagster.sources.http.extractor import create_http_extractor
from dataproc_dagster.sources.http.incremental import Incremental
from dataproc_dagster.sources.http.pagination import (
    cursor,
    link_header,
    next_url,
    offset,
    page_number,
    single,
)
from dataproc_dagster.sources.http.resource import HttpResource
from dataproc_dagster.sources.http.retry import HttpRetryPolicy
from dataproc_dagster.sources.metabase.extractor import create_metabase_extractor
from dataproc_dagster.sources.metabase.resource import MetabaseResource

if TYPE_CHECKING:
    from dataproc_dagster.definitions import defs as defs

# Names loaded on first access, with their module. ``defs`` discovers and builds every job,
# so pipeline modules, tests and the CLIs must not pay for it; Dagster finds it through
# ``dir()``, which lists it.
_LAZY = {
    "defs": "dataproc_dagster.definitions",
}

__all__ = [
    "ClickHouseMigrationManager",
    "ClickHouseResource",
    "ConfigError",
    "DataprocError",
    "DriftPolicy",
    "HttpResource",
    "HttpRetryPolicy",
    "Incremental",
    "LoadError",
    "LockTimeoutError",
    "MetabaseResource",
    "PartitionWindow",
    "Pipeline",
    "SchemaError",
    "SourceError",
    "WriteMode",
    "api_key",
    "basic",
    "bearer",
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
    "cursor",
    "daily_partitions",
    "get_settings",
    "hourly_partitions",
    "link_header",
    "measure_step",
    "monthly_partitions",
    "next_url",
    "offset",
    "page_number",
    "setting",
    "single",
    "static_partitions",
    "weekly_partitions",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dataproc_dagster' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
