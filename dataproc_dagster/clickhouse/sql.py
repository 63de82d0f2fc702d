"""ClickHouse SQL text helpers: quoted identifiers and one-number queries."""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client


def scalar(client: Client, sql: str, parameters: dict[str, Any] | None = None) -> int:
    """Run a query returning one integer (``SELECT count() ...``)."""
    rows = client.query(sql, parameters=parameters).result_rows
    return int(rows[0][0]) if rows else 0


def quote_identifier(name: str) -> str:
    """Quote a ClickHouse identifier with backticks."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def qualified_name(table: str, database: str | None = None) -> str:
    """``database.table`` with both parts quoted; ``table`` may already hold ``db.name``."""
    if database is None and "." in table:
        database, table = table.split(".", 1)
    if database:
        return f"{quote_identifier(database)}.{quote_identifier(table)}"
    return quote_identifier(table)
