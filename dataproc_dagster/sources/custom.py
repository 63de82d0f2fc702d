"""Custom extractors: any function that yields chunks becomes a pipeline source."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.pipeline.contracts import Chunk, StepContext

ExtractFunction = Callable[..., Iterable[Chunk] | Chunk]


@dataclass(frozen=True)
class FunctionExtractor:
    """Extractor spec around a user function; build it with :func:`create_extractor`."""

    fn: ExtractFunction
    name: str
    kind: str = "custom"
    required_resource_keys: frozenset[str] = field(default=frozenset())
    config_schema: Any = None

    def describe(self) -> str:
        """The function's name."""
        return f"custom extractor {self.name}"

    def extract(self, ctx: StepContext) -> Iterator[Chunk]:
        """Call the function; a single DataFrame/Table result counts as one chunk."""
        takes_ctx = bool(inspect.signature(self.fn).parameters)
        result = self.fn(ctx) if takes_ctx else self.fn()
        if isinstance(result, Iterable) and not hasattr(result, "columns"):
            yield from result
        else:
            yield result


def create_extractor(
    fn: ExtractFunction,
    name: str | None = None,
    *,
    required_resource_keys: Iterable[str] = (),
    config_schema: Any = None,
) -> FunctionExtractor:
    """Turn a function into an extractor.

    Args:
        fn: ``fn()`` or ``fn(ctx)`` returning a DataFrame / Arrow table or yielding several.
            ``ctx`` is a :class:`~dataproc_dagster.pipeline.contracts.StepContext` (log,
            resources, config).
        name: Name used in messages (default: the function's name).
        required_resource_keys: Resources the function reads from ``ctx.resource(key)``.
        config_schema: Run config the function reads from ``ctx.config``.

    Example:
        >>> def rates():
        ...     yield pd.DataFrame({"currency": ["EUR"], "rate": [1.08]})
        >>> extractor = create_extractor(rates)
    """
    if not callable(fn):
        raise ConfigError(f"create_extractor needs a function, got {type(fn).__name__}")
    return FunctionExtractor(
        fn=fn,
        name=name or str(getattr(fn, "__name__", "extract")),
        required_resource_keys=frozenset(required_resource_keys),
        config_schema=config_schema,
    )
