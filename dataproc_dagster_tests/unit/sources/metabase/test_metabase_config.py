"""The ``dagster.Config`` model of the generic Metabase extract step."""

from __future__ import annotations

import dataclasses

import pytest

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.sources.metabase.extractor import (
    MetabaseExtractor,
    MetabaseSourceConfig,
    create_metabase_extractor,
)
from dataproc_dagster.sources.metabase.paging import ReadMethod


def test_the_model_defaults_are_the_extractor_defaults() -> None:
    from_config = create_metabase_extractor(from_config=True)
    resolved = from_config.with_config(MetabaseSourceConfig(database_id=1, table_id=2))
    direct = create_metabase_extractor(1, 2)
    assert dataclasses.asdict(resolved) == dataclasses.asdict(direct)
    assert resolved.method is ReadMethod.DATASET
    assert resolved.page_size == MetabaseExtractor().page_size


def test_the_schema_option_keeps_its_run_config_name() -> None:
    config = MetabaseSourceConfig(database_name="Sales", schema="PUBLIC", table_name="ORDERS")
    resolved = create_metabase_extractor(from_config=True).with_config(config)
    assert (resolved.database_name, resolved.schema, resolved.table_name) == (
        "Sales",
        "PUBLIC",
        "ORDERS",
    )


def test_a_config_naming_two_sources_is_refused_with_the_fix() -> None:
    config = MetabaseSourceConfig(database_id=1, table_id=2, native_query="SELECT 1")
    with pytest.raises(ConfigError, match="give exactly one source"):
        create_metabase_extractor(from_config=True).with_config(config)
