"""Run config of the load step of a generic job: a ``dagster.Config`` model.

Choices are ``Literal`` fields mirroring :class:`WriteMode` and :class:`DriftPolicy` (a unit
test keeps them equal), so the Launchpad refuses a typo such as ``upsrt`` before the run
starts while the run config keeps the plain strings; defaults are those of :class:`LoadSpec`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dataproc_dagster.core.modes import DriftPolicy, WriteMode
from dataproc_dagster.loading.spec import LoadSpec
from dataproc_dagster.pipeline.config_types import StepConfig, default_of

WriteModeName = Literal["append", "replace", "replace_partitions", "upsert"]
DriftPolicyName = Literal["evolve", "freeze", "discard"]


class LoaderConfig(StepConfig):
    """Run config of a config-driven ClickHouse load step (``table``, ``mode``, ...)."""

    table: str = Field(description="Target table, `table` or `database.table`")
    mode: WriteModeName = Field(
        default=default_of(LoadSpec, "mode").value, description=f"One of {', '.join(WriteMode)}"
    )
    key_columns: list[str] = Field(
        default=list(default_of(LoadSpec, "key_columns")), description="Key of upsert mode"
    )
    order_by: list[str] = Field(
        default=list(default_of(LoadSpec, "order_by")), description="ORDER BY for a new table"
    )
    partition_by: str | None = Field(
        default=default_of(LoadSpec, "partition_by"), description="PARTITION BY for a new table"
    )
    schema_drift: DriftPolicyName = Field(
        default=default_of(LoadSpec, "schema_drift").value,
        description=f"One of {', '.join(DriftPolicy)}: fail on new columns, add them to the "
        "table, or drop them",
    )
