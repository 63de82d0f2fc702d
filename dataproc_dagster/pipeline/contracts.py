"""What every pipeline step is made of: extractor, transformer and loader specifications.

A factory such as ``create_http_extractor`` returns a small spec object; ``create_etl_pipeline``
turns the specs into Dagster ops, so that chunk I/O, metrics, error messages and naming live
in one place (:mod:`dataproc_dagster.pipeline.steps`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.clickhouse.tables import TargetTable
from dataproc_dagster.core.chunks import Chunk
from dataproc_dagster.pipeline.window import PartitionWindow, window_of

# The step metadata an extractor sets to the window it read (an incremental lower bound): it
# becomes part of the identity of the load of those rows.
WINDOW_METADATA = "incremental_from"


@dataclass
class StepContext:
    """What a step's code sees: names for messages, the Dagster context, resources, config.

    Attributes:
        pipeline: The pipeline (job) name, for error messages.
        step: The op name.
        dagster: The Dagster ``OpExecutionContext``.
        config: The op's run config (empty when the step declares none).
        config_model: The op's ``dagster.Config`` model, when the step declares one (its
            values are in ``config`` too).
        target: The pipeline's target table, when the pipeline has a ClickHouse loader.
        metadata: Figures the step's code adds (requests, pages, retries); they are shown with
            the step's output metadata in the UI.
    """

    pipeline: str
    step: str
    dagster: Any
    config: Mapping[str, Any] = field(default_factory=dict)
    target: TargetTable | None = None
    config_model: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def log(self) -> Any:
        """The Dagster logger of the step (messages appear in the run's log in the UI)."""
        return self.dagster.log

    def resource(self, key: str) -> Any:
        """A resource of the job by key."""
        return getattr(self.dagster.resources, key)

    @property
    def window(self) -> PartitionWindow | None:
        """The run's partition window (keys, start, end); ``None`` without partitions."""
        return window_of(self.dagster)

    @property
    def clickhouse(self) -> ClickHouseResource:
        """The ``clickhouse`` resource."""
        resource: ClickHouseResource = self.resource("clickhouse")
        return resource


@runtime_checkable
class Extractor(Protocol):
    """Produces the rows of a source as a stream of chunks.

    Attributes:
        kind: Short name of the source kind (``http``, ``clickhouse``, ``metabase``).
        required_resource_keys: Resource keys the extractor uses.
        config_schema: Run config of the op: a ``dagster.Config`` class (the op receives an
            instance in ``ctx.config_model``), a legacy Dagster config schema, or ``None``;
            values arrive in ``ctx.config`` (used by generic jobs launched with run config
            only).
    """

    @property
    def kind(self) -> str:
        """Short name of the source kind."""
        ...

    @property
    def required_resource_keys(self) -> frozenset[str]:
        """Resource keys the extractor uses."""
        ...

    @property
    def config_schema(self) -> Any:
        """``dagster.Config`` class or Dagster config schema of the op, or ``None``."""
        ...

    def describe(self) -> str:
        """Where the rows come from, with secrets masked."""
        ...

    def extract(self, ctx: StepContext) -> Iterator[Chunk]:
        """Yield the rows in chunks (DataFrames or Arrow tables of any size)."""
        ...


@runtime_checkable
class Loader(Protocol):
    """Writes a pipeline's chunks somewhere; becomes the pipeline's load op."""

    @property
    def target(self) -> TargetTable | None:
        """The ClickHouse table written, when there is one (for incremental extractors)."""
        ...

    def describe(self) -> str:
        """Where the rows go."""
        ...

    def build_op(self, pipeline: str, name: str) -> Any:
        """The Dagster op that loads a ``ChunkSet`` input named ``chunks``."""
        ...
