"""ClickHouse tables: names, reading their columns, creating, counting and dropping them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from dataproc_dagster.clickhouse.sql import qualified_name, quote_identifier, scalar
from dataproc_dagster.clickhouse.sql_safety import check_expression
from dataproc_dagster.clickhouse.types import ColumnType, arrow_to_clickhouse


@dataclass(frozen=True)
class TargetTable:
    """The table a pipeline loads into."""

    database: str
    table: str

    @property
    def qualified(self) -> str:
        """``database.table``."""
        return f"{self.database}.{self.table}"


def split_table(name: str, default_database: str) -> tuple[str, str]:
    """``db.table`` -> (db, table); a bare name takes ``default_database``."""
    if "." in name:
        database, table = name.split(".", 1)
        return database, table
    return default_database, name


@dataclass(frozen=True)
class TableInfo:
    """What the loader needs to know about an existing table."""

    database: str
    name: str
    engine: str
    partition_key: str
    sorting_key: str
    columns: tuple[tuple[str, ColumnType], ...]

    @property
    def qualified(self) -> str:
        """Quoted ``database.table``."""
        return qualified_name(self.name, self.database)

    @property
    def column_types(self) -> dict[str, ColumnType]:
        """Column name -> type."""
        return dict(self.columns)


def describe_table(client: Client, database: str, table: str) -> TableInfo | None:
    """Read a table's engine, keys and columns; ``None`` when it does not exist."""
    rows = client.query(
        "SELECT engine, partition_key, sorting_key FROM system.tables "
        "WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    if not rows:
        return None
    engine, partition_key, sorting_key = rows[0]
    columns = client.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} "
        "ORDER BY position",
        parameters={"db": database, "t": table},
    ).result_rows
    return TableInfo(
        database=database,
        name=table,
        engine=engine,
        partition_key=partition_key,
        sorting_key=sorting_key,
        columns=tuple((name, ColumnType(ctype)) for name, ctype in columns),
    )


def column_ddl(
    schema: pa.Schema, nullable_columns: set[str], not_null: Sequence[str] = ()
) -> list[str]:
    """Column definitions for ``schema``; ``not_null`` columns are never ``Nullable``."""
    keep = set(not_null)
    return [
        f"{quote_identifier(f.name)} "
        f"{arrow_to_clickhouse(f, nullable=f.name in nullable_columns and f.name not in keep)}"
        for f in schema
    ]


def create_table_sql(
    database: str,
    table: str,
    schema: pa.Schema,
    nullable_columns: set[str],
    *,
    engine: str = "MergeTree",
    order_by: Sequence[str] = (),
    partition_by: str | None = None,
    extra_columns: Sequence[str] = (),
) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a frame schema, keys kept out of ``Nullable``.

    Names are quoted; ``partition_by`` and ``engine`` are checked to be one expression each.

    Raises:
        ConfigError: When ``partition_by`` or ``engine`` is not one plain expression.
    """
    where = f"{database}.{table}"
    check_expression(engine, option="engine", source=where)
    if partition_by:
        check_expression(partition_by, option="partition_by", source=where)
    columns = column_ddl(schema, nullable_columns, not_null=order_by) + list(extra_columns)
    order = ", ".join(quote_identifier(c) for c in order_by) if order_by else ""
    sql = (
        f"CREATE TABLE IF NOT EXISTS {qualified_name(table, database)} (\n    "
        + ",\n    ".join(columns)
        + f"\n) ENGINE = {engine}"
    )
    if partition_by:
        sql += f"\nPARTITION BY {partition_by}"
    sql += f"\nORDER BY ({order})" if order else "\nORDER BY tuple()"
    return sql


def drop_table(client: Client, database: str, table: str) -> None:
    """Drop a table at once (``SYNC``), if it exists."""
    client.command(f"DROP TABLE IF EXISTS {qualified_name(table, database)} SYNC")


def count_rows(client: Client, database: str, table: str) -> int:
    """``count()`` of a table."""
    return scalar(client, f"SELECT count() FROM {qualified_name(table, database)}")


def active_partitions(client: Client, database: str, table: str) -> list[str]:
    """Partition ids that hold active parts."""
    rows = client.query(
        "SELECT DISTINCT partition_id FROM system.parts WHERE database = {db:String} "
        "AND table = {t:String} AND active ORDER BY partition_id",
        parameters={"db": database, "t": table},
    ).result_rows
    return [row[0] for row in rows]
