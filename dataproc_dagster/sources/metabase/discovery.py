"""Discovery: databases, tables and fields of a Metabase, and table look-up by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.sources.metabase.client import MetabaseClient
from dataproc_dagster.sources.metabase.types import clickhouse_type


@dataclass(frozen=True)
class DatabaseInfo:
    """One database Metabase knows."""

    id: int
    name: str
    engine: str
    native_sql: bool
    is_sample: bool = False

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> DatabaseInfo:
        """Build from a ``/api/database`` entry."""
        return cls(
            id=int(data["id"]),
            name=str(data.get("name") or ""),
            engine=str(data.get("engine") or ""),
            native_sql=data.get("native_permissions") == "write",
            is_sample=bool(data.get("is_sample")),
        )


@dataclass(frozen=True)
class FieldInfo:
    """One column of a table as Metabase synced it."""

    id: int
    name: str
    display_name: str
    base_type: str
    effective_type: str | None
    semantic_type: str | None
    visibility: str
    position: int
    database_type: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> FieldInfo:
        """Build from a ``fields`` entry."""
        return cls(
            id=int(data["id"]),
            name=str(data.get("name") or ""),
            display_name=str(data.get("display_name") or data.get("name") or ""),
            base_type=str(data.get("base_type") or "type/*"),
            effective_type=data.get("effective_type"),
            semantic_type=data.get("semantic_type"),
            visibility=str(data.get("visibility_type") or "normal"),
            position=int(data.get("position") or 0),
            database_type=str(data.get("database_type") or ""),
        )

    @property
    def is_pk(self) -> bool:
        """True for the table's primary key."""
        return self.semantic_type == "type/PK"

    @property
    def selected_by_default(self) -> bool:
        """MBQL without ``fields`` leaves out ``sensitive`` and ``retired`` fields."""
        return self.visibility not in ("sensitive", "retired")

    def as_col(self) -> dict[str, Any]:
        """This field in the shape of a result ``cols`` entry."""
        return {
            "name": self.name,
            "display_name": self.display_name,
            "base_type": self.base_type,
            "effective_type": self.effective_type,
        }


@dataclass(frozen=True)
class MetabaseTable:
    """One table, with its fields when they were asked for."""

    id: int
    db_id: int
    schema: str | None
    name: str
    display_name: str
    visibility: str | None
    rows: int | None
    fields: tuple[FieldInfo, ...] = field(default=())
    db_name: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> MetabaseTable:
        """Build from a table object (``fields`` optional)."""
        fields = tuple(
            sorted(
                (FieldInfo.from_api(f) for f in data.get("fields") or ()),
                key=lambda f: (f.position, f.id),
            )
        )
        return cls(
            id=int(data["id"]),
            db_id=int(data.get("db_id") or 0),
            schema=data.get("schema"),
            name=str(data.get("name") or ""),
            display_name=str(data.get("display_name") or data.get("name") or ""),
            visibility=data.get("visibility_type"),
            rows=data.get("rows"),
            fields=fields,
            db_name=str((data.get("db") or {}).get("name") or ""),
        )

    @property
    def qualified(self) -> str:
        """``schema.name`` (or just ``name`` when the database has no schemas)."""
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def pk(self) -> FieldInfo | None:
        """The primary-key field, if Metabase knows one."""
        return next((f for f in self.fields if f.is_pk), None)


def list_databases(client: MetabaseClient) -> list[DatabaseInfo]:
    """Every database the credentials can see (``GET /api/database``, not paginated)."""
    body = client.get_json("/api/database")
    # Very old releases answered a bare array; current ones {"data": [...], "total": n}.
    items = body.get("data", []) if isinstance(body, Mapping) else body
    return [DatabaseInfo.from_api(d) for d in items]


def get_database(client: MetabaseClient, database_id: int) -> DatabaseInfo:
    """One database by id."""
    return DatabaseInfo.from_api(client.get_json(f"/api/database/{int(database_id)}"))


def list_tables(
    client: MetabaseClient, database_id: int, *, include_hidden: bool = False
) -> list[MetabaseTable]:
    """The tables of a database, with their fields (``GET /api/database/:id/metadata``)."""
    params = {"include_hidden": "true"} if include_hidden else None
    body = client.get_json(f"/api/database/{int(database_id)}/metadata", params)
    tables = [
        MetabaseTable.from_api({**t, "db_id": t.get("db_id", database_id)})
        for t in body.get("tables") or ()
    ]
    return sorted(tables, key=lambda t: (t.schema or "", t.name, t.id))


def table_metadata(client: MetabaseClient, table_id: int) -> MetabaseTable:
    """A table with its fields (``GET /api/table/:id/query_metadata``)."""
    return MetabaseTable.from_api(client.get_json(f"/api/table/{int(table_id)}/query_metadata"))


def find_database(client: MetabaseClient, name: str) -> DatabaseInfo:
    """A database by its name as shown in Metabase (exact, then case-insensitive).

    Raises:
        ConfigError: When no database, or more than one, has that name.
    """
    databases = list_databases(client)
    exact = [d for d in databases if d.name == name]
    matches = exact or [d for d in databases if d.name.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"{d.name!r} (id {d.id})" for d in databases) or "none"
    if not matches:
        raise ConfigError(
            f"no Metabase database named {name!r}; known: {known}",
            source=client.source,
            fix="use one of the names above, or database_id",
        )
    raise ConfigError(
        f"{len(matches)} Metabase databases are named {name!r}: {known}",
        source=client.source,
        fix="use database_id to pick one",
    )


def find_table(
    client: MetabaseClient, database_id: int, table_name: str, schema: str | None = None
) -> MetabaseTable:
    """A table by name (and schema) in a database; names are matched as synced, then ignoring case.

    Raises:
        ConfigError: When no table, or more than one (in several schemas), matches.
    """
    tables = list_tables(client, database_id, include_hidden=True)

    def matching(exact: bool) -> list[MetabaseTable]:
        def same(a: str | None, b: str | None) -> bool:
            return (a or "") == (b or "") if exact else (a or "").lower() == (b or "").lower()

        return [
            t
            for t in tables
            if same(t.name, table_name) and (schema is None or same(t.schema, schema))
        ]

    matches = matching(True) or matching(False)
    where = f"{schema}.{table_name}" if schema else table_name
    if len(matches) == 1:
        return matches[0]
    if not matches:
        close = [t.qualified for t in tables if table_name.lower() in t.name.lower()][:10]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ConfigError(
            f"no table {where!r} in Metabase database {database_id}{hint}",
            source=client.source,
            fix="check schema and table_name (case as Metabase shows them; list them with the "
            "metabase_catalog job), or use table_id",
        )
    raise ConfigError(
        f"table name {table_name!r} is in several schemas of database {database_id}: "
        + ", ".join(t.qualified for t in matches),
        source=client.source,
        fix="set schema to pick one, or use table_id",
    )


def resolve_table(
    client: MetabaseClient,
    *,
    database_id: int | None = None,
    table_id: int | None = None,
    database_name: str | None = None,
    schema: str | None = None,
    table_name: str | None = None,
) -> MetabaseTable:
    """Find a table by id, or by database (id or name) + schema + table name, with its fields.

    Raises:
        ConfigError: When the ids / names do not identify one table, or disagree.
        SourceError: When Metabase does not know the table id.
    """
    if table_id is not None:
        table = table_metadata(client, table_id)
        if database_id is not None and table.db_id and table.db_id != database_id:
            raise ConfigError(
                f"table {table_id} belongs to database {table.db_id}, not {database_id}",
                source=client.source,
                fix="drop database_id or use the table's own database",
            )
        return table
    if not table_name:
        raise ConfigError("no table given", source=client.source, fix="set table_id, or table_name")
    if database_id is None:
        if not database_name:
            raise ConfigError(
                f"table {table_name!r} given without its database",
                source=client.source,
                fix="set database_id or database_name",
            )
        database_id = find_database(client, database_name).id
    found = find_table(client, database_id, table_name, schema)
    return table_metadata(client, found.id)


def catalog_markdown(
    databases: Sequence[DatabaseInfo], tables: Mapping[int, Sequence[MetabaseTable]]
) -> str:
    """A Markdown overview of databases and tables, for op metadata in the UI."""
    lines = ["| database | id | engine | schema | table | table id | rows | columns | visibility |"]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for db in databases:
        db_tables = tables.get(db.id, ())
        if not db_tables:
            lines.append(f"| {_md(db.name)} | {db.id} | {db.engine} | | | | | | |")
        for t in db_tables:
            lines.append(
                f"| {_md(db.name)} | {db.id} | {db.engine} | {_md(t.schema or '')} | "
                f"{_md(t.name)} | {t.id} | {'' if t.rows is None else t.rows} | "
                f"{len(t.fields)} | {t.visibility or 'normal'} |"
            )
    return "\n".join(lines)


def fields_markdown(table: MetabaseTable) -> str:
    """A Markdown table of a table's fields with their Metabase and ClickHouse types."""
    lines = [
        f"**{_md(table.qualified)}** (table id {table.id}, database {table.db_id})",
        "",
        "| field | id | base_type | effective_type | semantic | visibility | ClickHouse |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in table.fields:
        lines.append(
            f"| {_md(f.name)} | {f.id} | {f.base_type} | {f.effective_type or ''} | "
            f"{f.semantic_type or ''} | {f.visibility} | "
            f"{clickhouse_type(f.base_type, f.effective_type)} |"
        )
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
