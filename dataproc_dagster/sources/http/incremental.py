"""Incremental loads: the lower bound is the highest cursor value already in the target table.

Reading the bound from ClickHouse (not from a saved state) means it cannot drift from what
actually landed: a failed run leaves the table, and so the next bound, as they were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from dataproc_dagster.clickhouse.connection import ClickHouseConnection
from dataproc_dagster.clickhouse.sql import qualified_name, quote_identifier
from dataproc_dagster.clickhouse.sql_safety import check_identifier
from dataproc_dagster.clickhouse.tables import TargetTable
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.sources.http.walker import get_path


@dataclass(frozen=True)
class Incremental:
    """Load only records newer than what the target table holds.

    Attributes:
        cursor_field: JSON path of the cursor in a record (``updated_at``, ``meta.modified``);
            its column in the table is the flattened name (``meta_modified``).
        param: Request parameter that takes the lower bound (``updated_since``).
        key: Fields identifying a record (``("id",)``). Records at the bound whose key is
            already in the table are dropped; without a key every record at the bound is
            dropped (safe when the cursor is unique, e.g. an increasing id).
        initial_value: Bound sent on the first run (empty table); ``None`` sends none.
        table: Table to read the bound from, ``db.table`` or ``table``; defaults to the
            pipeline's target.
    """

    cursor_field: str
    param: str
    key: tuple[str, ...] = ()
    initial_value: str | None = None
    table: str | None = None

    def __post_init__(self) -> None:
        # The cursor and key become quoted column names in the bound query; the table, a
        # quoted table name.
        check_identifier(self.cursor_field, option="incremental cursor_field")
        for field in self.key:
            check_identifier(field, option="incremental key item")
        if self.table:
            for part in self.table.split(".", 1):
                check_identifier(part, option="incremental table", kind="table")

    @property
    def column(self) -> str:
        """The cursor's column name in the table."""
        return self.cursor_field.replace(".", "_")

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The key's column names in the table."""
        return tuple(k.replace(".", "_") for k in self.key)


@dataclass
class LowerBound:
    """The bound of this run and the keys of the rows already loaded at it."""

    value: Any
    keys: frozenset[tuple[str, ...]] = frozenset()

    @property
    def param_value(self) -> str:
        """The bound as sent in the request."""
        return _format(self.value)

    def keep(self, records: Sequence[Any], incremental: Incremental) -> list[Any]:
        """Drop records below the bound, and those at it that are already loaded."""
        bound = _comparable(self.value)
        kept = []
        for record in records:
            if not isinstance(record, Mapping):
                kept.append(record)  # the record converter reports it with the page
                continue
            value = get_path(record, incremental.cursor_field)
            if value is None:
                kept.append(record)
                continue
            current = _comparable(value)
            try:
                if current < bound:
                    continue
                if current == bound:
                    if not incremental.key:
                        continue
                    key = tuple(str(get_path(record, k)) for k in incremental.key)
                    if key in self.keys:
                        continue
            except TypeError:
                pass
            kept.append(record)
        return kept


def read_lower_bound(
    clickhouse: ClickHouseConnection,
    target: TargetTable | str,
    incremental: Incremental,
    *,
    step: str | None = None,
) -> LowerBound | None:
    """The highest cursor value in ``target`` and the keys at it; ``None`` when empty or absent.

    Raises:
        ConfigError: When the table exists but has no column for the cursor or the key.
    """
    if isinstance(target, TargetTable):
        database, table = target.database, target.table
    elif "." in target:
        database, table = target.split(".", 1)
    else:
        database, table = clickhouse.database, target
    name = qualified_name(table, database)
    with clickhouse.get_client(step=step) as client:
        columns = {
            row[0]
            for row in client.query(
                "SELECT name FROM system.columns "
                "WHERE database = {db:String} AND table = {t:String}",
                parameters={"db": database, "t": table},
            ).result_rows
        }
        if not columns:
            return None
        missing = [c for c in (incremental.column, *incremental.key_columns) if c not in columns]
        if missing:
            raise ConfigError(
                f"target table {database}.{table} has no column {', '.join(map(repr, missing))} "
                "for the incremental cursor / key",
                source=f"{database}.{table}",
                fix="set incremental cursor_field / key to columns the table holds "
                f"(it has: {', '.join(sorted(columns))})",
            )
        cursor = quote_identifier(incremental.column)
        rows = client.query(f"SELECT max({cursor}), count() FROM {name}").result_rows
        value, count = rows[0]
        if not count or value is None:
            return None
        keys: frozenset[tuple[str, ...]] = frozenset()
        if incremental.key:
            key_sql = ", ".join(quote_identifier(k) for k in incremental.key_columns)
            found = client.query(
                f"SELECT {key_sql} FROM {name} WHERE {cursor} = (SELECT max({cursor}) FROM {name})"
            ).result_rows
            keys = frozenset(tuple(str(v) for v in row) for row in found)
    return LowerBound(value=value, keys=keys)


def _format(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _comparable(value: Any) -> Any:
    # Bounds come back from ClickHouse typed (datetime, int, str) while records hold JSON
    # values; bring both to one type so that the boundary filter compares like with like.
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return text
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value
