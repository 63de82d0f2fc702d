"""The ClickHouse extractor: a query streamed out in Arrow chunks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from dataproc_dagster.core.errors import SourceError
from dataproc_dagster.pipeline.contracts import StepContext
from dataproc_dagster.pipeline.window import render_window, window_fields_of

_SHOWN_SQL = 200
BATCH_ROWS = 100_000


@dataclass(frozen=True)
class ClickHouseExtractor:
    """Extractor spec; build it with :func:`create_clickhouse_extractor`."""

    query: str
    parameters: Mapping[str, Any] | Sequence[Any] | None = None
    database: str | None = None
    # Bound parameters filled from the partition window: name -> "{start:%Y-%m-%d %H:%M:%S}".
    window_parameters: Mapping[str, str] | None = None
    kind: str = "clickhouse"
    required_resource_keys: frozenset[str] = field(default=frozenset({"clickhouse"}))
    config_schema: Any = None

    def describe(self) -> str:
        """The query, shortened."""
        sql = " ".join(self.query.split())
        short = sql if len(sql) <= _SHOWN_SQL else sql[: _SHOWN_SQL - 3] + "..."
        return f"ClickHouse query: {short}"

    def extract(self, ctx: StepContext) -> Iterator[pa.Table]:
        """Stream the query's result batch by batch (memory stays flat)."""
        parameters = (
            dict(self.parameters) if isinstance(self.parameters, Mapping) else self.parameters
        )
        if self.window_parameters:
            window = render_window(
                ctx.window, self.window_parameters, option="ClickHouse extractor window_parameters"
            )
            if parameters is not None and not isinstance(parameters, dict):
                raise SourceError(
                    "window_parameters need named parameters, not a list",
                    source=self.describe(),
                    fix="bind {name:Type} placeholders with a dict of parameters",
                )
            parameters = {**(parameters or {}), **window}
            ctx.metadata["window_parameters"] = ", ".join(f"{k}={v}" for k, v in window.items())
        try:
            with ctx.clickhouse.connection.arrow_batches(
                self.query,
                parameters,
                batch_rows=BATCH_ROWS,
                database=self.database,
                step=ctx.step,
            ) as batches:
                for batch in batches:
                    yield pa.Table.from_batches([batch])
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(
                f"the query failed: {str(exc)[:600]}",
                source=self.describe(),
                fix="correct the SQL (run it in clickhouse-client or the chDB shell first) and "
                "check the tables it reads exist",
            ) from exc


def create_clickhouse_extractor(
    query: str,
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    database: str | None = None,
    window_parameters: Mapping[str, str] | None = None,
) -> ClickHouseExtractor:
    """Extract the result of a ClickHouse query, streamed in chunks.

    Args:
        query: SQL; bind values with ``{name:Type}`` placeholders, never string formatting.
        parameters: Values of the placeholders.
        database: Database to run in (default: the resource's).
        window_parameters: Bound parameters filled from the partition window of a
            partitioned pipeline, e.g. ``{"start": "{start:%Y-%m-%d %H:%M:%S}"}`` for
            ``WHERE ts >= {start:DateTime('UTC')}``; values are bound, never pasted.

    Example:
        >>> extractor = create_clickhouse_extractor(
        ...     "SELECT * FROM events WHERE day >= {since:Date}", {"since": "2024-01-01"}
        ... )
    """
    window_fields_of(window_parameters, option="ClickHouse extractor window_parameters")
    return ClickHouseExtractor(
        query=query,
        parameters=parameters,
        database=database,
        window_parameters=dict(window_parameters) if window_parameters else None,
    )
