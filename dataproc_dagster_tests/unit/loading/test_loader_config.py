"""The ``dagster.Config`` model of a generic job's load step: choices and defaults."""

from __future__ import annotations

from dataproc_dagster.core.modes import DriftPolicy, WriteMode
from dataproc_dagster.loading.config import LoaderConfig
from dataproc_dagster.loading.loader import create_clickhouse_loader
from dataproc_dagster.loading.spec import LoadSpec


def test_the_model_defaults_are_the_load_spec_defaults() -> None:
    spec = create_clickhouse_loader().resolve(LoaderConfig(table="db.t"), "default")
    assert spec == LoadSpec(database="db", table="t")
    assert spec.mode is WriteMode.APPEND and spec.schema_drift is DriftPolicy.FREEZE


def test_a_bare_table_name_takes_the_default_database() -> None:
    config = LoaderConfig(table="t", mode="upsert", key_columns=["id"], schema_drift="evolve")
    spec = create_clickhouse_loader().resolve(config, "analytics")
    assert (spec.database, spec.table, spec.key_columns) == ("analytics", "t", ("id",))
    assert spec.mode is WriteMode.UPSERT and spec.schema_drift is DriftPolicy.EVOLVE
