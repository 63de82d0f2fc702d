"""Transformers: a user function ``DataFrame -> DataFrame`` (or ``pa.Table -> pa.Table``)
applied to every chunk."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from dagster import DagsterType

from dataproc_dagster.core.errors import ConfigError

TransformFunction = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class Transformer:
    """Transformer spec; build it with :func:`create_transformer`."""

    fn: TransformFunction
    name: str
    output_type: DagsterType | None = None
    config_schema: Any = None
    arrow: bool = False

    def describe(self) -> str:
        """The transformer's name."""
        return self.name

    def apply(self, frame: Any, config: dict[str, Any]) -> Any:
        """Run the function on one chunk; pass run config when the function takes it."""
        result = self.fn(frame, config) if _takes_config(self.fn) else self.fn(frame)
        expected = (pa.Table, "an Arrow table") if self.arrow else (pd.DataFrame, "a DataFrame")
        if not isinstance(result, expected[0]):
            raise TypeError(
                f"transformer {self.name!r} returned {type(result).__name__}, not {expected[1]}"
            )
        return result


def _takes_config(fn: Callable[..., Any]) -> bool:
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2


def create_transformer(
    fn: TransformFunction,
    name: str | None = None,
    *,
    output_type: DagsterType | None = None,
    config_schema: Any = None,
    arrow: bool = False,
) -> Transformer:
    """Wrap ``fn`` (``DataFrame -> DataFrame``) as a pipeline transformer.

    The function runs once per chunk, so it must work row-wise or group within a chunk (use an
    ELT step in ClickHouse for whole-table aggregates).

    Args:
        fn: ``fn(df)`` or ``fn(df, config)``; returns the new DataFrame.
        name: Step name (default: the function's name).
        output_type: A dagster-pandas DataFrame type; every output chunk must pass it.
        config_schema: Run config the function receives as its second argument.
        arrow: ``fn`` takes and returns a ``pyarrow.Table`` instead of a DataFrame (use
            ``pyarrow.compute``): the chunk is not converted to pandas and back, which is most
            of a transform step's time on wide or text-heavy data.

    Example:
        >>> def add_total(df):
        ...     return df.assign(total=df.price * df.qty)
        >>> transformer = create_transformer(add_total)
    """
    if not callable(fn):
        raise ConfigError(f"create_transformer needs a function, got {type(fn).__name__}")
    if arrow and output_type is not None:
        raise ConfigError(
            "output_type checks DataFrames; it cannot be combined with arrow=True",
            fix="drop output_type, or check the Arrow table inside the function",
        )
    return Transformer(
        fn=fn,
        name=name or str(getattr(fn, "__name__", "transform")),
        output_type=output_type,
        config_schema=config_schema,
        arrow=arrow,
    )
