"""Custom loaders: any function that writes a chunk somewhere becomes a pipeline's loader."""

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from dagster import In, OpDefinition, OpExecutionContext, Out, Output, RetryPolicy, op

from dataproc_dagster.clickhouse.tables import TargetTable
from dataproc_dagster.core.chunks import ChunkSet
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.observability.metrics import measure_step
from dataproc_dagster.pipeline.contracts import StepContext
from dataproc_dagster.pipeline.steps import ChunkSetType, pipeline_errors

LoadFunction = Callable[..., Any]


@dataclass(frozen=True)
class FunctionLoader:
    """Loader spec around a user function; build it with :func:`create_loader`."""

    fn: LoadFunction
    name: str
    required_resource_keys: frozenset[str] = field(default=frozenset())
    retry_policy: RetryPolicy | None = None

    @property
    def target(self) -> TargetTable | None:
        """Custom loaders write no ClickHouse table the framework knows of."""
        return None

    def describe(self) -> str:
        """The function's name."""
        return f"custom loader {self.name}"

    def build_op(self, pipeline: str, name: str) -> OpDefinition:
        """An op calling the function once per chunk."""
        takes_ctx = len(inspect.signature(self.fn).parameters) >= 2
        loader = self

        @op(
            name=name,
            description=f"Load: {self.describe()}",
            ins={"chunks": In(ChunkSetType)},
            out=Out(dict),
            required_resource_keys=set(self.required_resource_keys),
            retry_policy=self.retry_policy,
            tags={"kind": "custom", "dataproc/step": "load"},
        )
        def _load(
            context: OpExecutionContext, chunks: ChunkSet
        ) -> Iterator[Output[dict[str, Any]]]:
            ctx = StepContext(pipeline, name, context)
            with (
                pipeline_errors(pipeline, name, loader.describe()),
                measure_step(name, context.log) as metrics,
            ):
                for frame in chunks.iter_frames():
                    loader.fn(frame, ctx) if takes_ctx else loader.fn(frame)
                    metrics.add(len(frame))
            summary = {"loader": loader.name, "rows": metrics.rows}
            yield Output(summary, metadata=metrics.metadata())

        return _load


def create_loader(
    fn: Callable[[pd.DataFrame], Any] | Callable[[pd.DataFrame, StepContext], Any],
    name: str | None = None,
    *,
    required_resource_keys: Iterable[str] = (),
    retry_policy: RetryPolicy | None = None,
) -> FunctionLoader:
    """Turn a function that writes one chunk into a pipeline loader.

    Args:
        fn: ``fn(df)`` or ``fn(df, ctx)``; called once per chunk, in order. ``ctx`` gives the log,
            resources (``ctx.resource(key)``) and names for messages.
        name: Name used in messages (default: the function's name).
        required_resource_keys: Resources the function uses.
        retry_policy: Dagster retry policy; make the function idempotent before setting one.
    """
    if not callable(fn):
        raise ConfigError(f"create_loader needs a function, got {type(fn).__name__}")
    return FunctionLoader(
        fn=fn,
        name=name or str(getattr(fn, "__name__", "load")),
        required_resource_keys=frozenset(required_resource_keys),
        retry_policy=retry_policy,
    )
