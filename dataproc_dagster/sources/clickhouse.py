"""The ClickHouse extractor: a query streamed out in Arrow chunks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from dataproc_dagster.core.errors import SourceError
from dataproc_dagster.pipeline.contracts import StepContext

_SHOWN_SQL = 200
BATCH_ROWS = 100_000


@dataclass(frozen=True)
class ClickHouseExtractor:
    """Extractor spec; build it with :func:`create_clickhouse_extractor`."""

    query: str
    parameters: Mapping[str, Any] | Sequence[Any] | None = None
    database: str | None = None
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
) -> ClickHouseExtractor:
    """Extract the result of a ClickHouse query, streamed in chunks.

    Args:
        query: SQL; bind values with ``{name:Type}`` placeholders, never string formatting.
        parameters: Values of the placeholders.
        database: Database to run in (default: the resource's).

    Example:
        >>> extractor = create_clickhouse_extractor(
        ...     "SELECT * FROM events WHERE day >= {since:Date}", {"since": "2024-01-01"}
        ... )
    """
    return ClickHouseExtractor(query=query, parameters=parameters, database=database)
