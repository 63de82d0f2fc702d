"""What a target table allows: its engine, the materialized views that read it, their dedup windows.

A load publishes with partition operations (``MOVE``/``REPLACE PARTITION``) and, for full
replaces, ``EXCHANGE TABLES``; these apply only to MergeTree-family tables and never fire
materialized views (MVs). A target read by MVs therefore receives an ``append``/``upsert`` as
``INSERT ... SELECT`` from the stage with a deterministic deduplication token, which makes a
repeated insert a no-op only on tables with a deduplication window: the target and every MV's
table need one. These facts are read from ``system.tables`` before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.modes import WriteMode

DEDUP_SETTING = "non_replicated_deduplication_window"
SUGGESTED_WINDOW = 1000
_TO_CLAUSE = re.compile(r"\sTO\s+(`[^`]+`|[\w.]+)(?:\.(`[^`]+`|\w+))?", re.IGNORECASE)
_WINDOW = re.compile(
    r"\b(non_replicated_deduplication_window|replicated_deduplication_window)"
    r"\s*=\s*(\d+)"
)


@dataclass(frozen=True)
class TableEngine:
    """A table's engine as ``system.tables`` reports it."""

    database: str
    name: str
    engine: str
    engine_full: str

    @property
    def where(self) -> str:
        """``database.name``."""
        return f"{self.database}.{self.name}"

    @property
    def merge_tree(self) -> bool:
        """A MergeTree-family table (the only kind partition operations apply to)."""
        return self.engine.endswith("MergeTree")

    @property
    def replicated(self) -> bool:
        """A replicated table (it has a deduplication window by default)."""
        return self.engine.startswith(("Replicated", "Shared"))


def table_engine(client: Client, database: str, table: str) -> TableEngine | None:
    """The engine of ``database.table``; ``None`` when the table does not exist."""
    rows = client.query(
        "SELECT engine, engine_full FROM system.tables "
        "WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    if not rows:
        return None
    return TableEngine(database, table, str(rows[0][0]), str(rows[0][1]))


def _underlying(engine: TableEngine) -> str:
    """What to load instead of a table that is not MergeTree: its local table, when known."""
    args = re.search(r"\((.*)\)", engine.engine_full)
    parts = [p.strip().strip("'`\"") for p in args.group(1).split(",")] if args else []
    if engine.engine == "Distributed" and len(parts) >= 3:
        return f"its local table {parts[1]}.{parts[2]} (on each shard)"
    if engine.engine == "Buffer" and len(parts) >= 2:
        return f"the table it flushes to, {parts[0]}.{parts[1]}"
    if engine.engine == "MaterializedView":
        return "the table the view writes to"
    return "a MergeTree-family table (the table this one reads from)"


def check_target_engine(engine: TableEngine) -> None:
    """Refuse a target that is not a MergeTree-family table, before anything is written.

    Raises:
        ConfigError: Naming the engine and what to load instead.
    """
    if engine.merge_tree:
        return
    raise ConfigError(
        f"table {engine.where} has engine {engine.engine}; the loader writes only into "
        "MergeTree-family tables (it stages the rows in a private table of the same shape and "
        "publishes them with partition operations, which other engines do not have)",
        source=engine.where,
        fix=f"load {_underlying(engine)} instead",
    )


def materialized_views(client: Client, database: str, table: str) -> list[TableEngine]:
    """The materialized views that read ``database.table`` (its dependencies)."""
    rows = client.query(
        "SELECT dependencies_database, dependencies_table FROM system.tables "
        "WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    views: list[TableEngine] = []
    for databases, names in rows:
        for view_db, view in zip(databases, names, strict=True):
            found = table_engine(client, str(view_db), str(view))
            if found is not None and found.engine == "MaterializedView":
                views.append(found)
    return views


def _view_target(client: Client, view: TableEngine) -> TableEngine | None:
    """The table an MV writes to: its ``TO`` table, or its inner table."""
    rows = client.query(
        "SELECT create_table_query, toString(uuid) FROM system.tables "
        "WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": view.database, "t": view.name},
    ).result_rows
    if not rows:
        return None
    query, uuid = str(rows[0][0]), str(rows[0][1])
    head = query.split(" AS SELECT", 1)[0].split(" AS\nSELECT", 1)[0]
    match = _TO_CLAUSE.search(head)
    if match:
        first, second = (g.strip("`") if g else g for g in match.groups())
        database, name = (first, second) if second else (view.database, first)
        if "." in name and not second:
            database, name = name.split(".", 1)
        return table_engine(client, database, name)
    for inner in (f".inner_id.{uuid}", f".inner.{view.name}"):
        found = table_engine(client, view.database, inner)
        if found is not None:
            return found
    return None


def _default_window(client: Client, replicated: bool) -> int:
    name = "replicated_deduplication_window" if replicated else DEDUP_SETTING
    rows = client.query(
        "SELECT value FROM system.merge_tree_settings WHERE name = {n:String}",
        parameters={"n": name},
    ).result_rows
    return int(rows[0][0]) if rows and str(rows[0][0]).isdigit() else 0


def dedup_window(client: Client, engine: TableEngine) -> int:
    """The number of recent inserts the table remembers to drop a repeated one (0: none)."""
    wanted = "replicated_deduplication_window" if engine.replicated else DEDUP_SETTING
    for name, value in _WINDOW.findall(engine.engine_full):
        if name == wanted:
            return int(value)
    return _default_window(client, engine.replicated)


def check_views_allow(client: Client, engine: TableEngine, mode: WriteMode) -> list[TableEngine]:
    """Check that a load in ``mode`` can reach the target's MVs exactly once; return the MVs.

    Raises:
        ConfigError: A replace mode on a table read by MVs, or a table (the target or an MV's)
            without a deduplication window, naming the table, the setting and the fix.
    """
    views = materialized_views(client, engine.database, engine.name)
    if not views:
        return []
    names = ", ".join(v.where for v in views)
    if mode in (WriteMode.REPLACE, WriteMode.REPLACE_PARTITIONS):
        raise ConfigError(
            f"write mode '{mode}' on table {engine.where}, which materialized views read "
            f"({names}): replacing rows never reaches a view (it only sees inserts), so the "
            "view's table would keep the replaced rows",
            source=engine.where,
            fix="load this table with mode 'append' or 'upsert', or load a table without "
            "materialized views and rebuild the view's table from it in a SQL step",
        )
    tables = [engine]
    for view in views:
        target = _view_target(client, view)
        if target is None:
            raise ConfigError(
                f"cannot find the table that materialized view {view.where} writes to",
                source=engine.where,
                fix="check the view's definition (SHOW CREATE TABLE)",
            )
        tables.append(target)
    for table in tables:
        if table.merge_tree and dedup_window(client, table) > 0:
            continue
        setting = "replicated_deduplication_window" if table.replicated else DEDUP_SETTING
        raise ConfigError(
            f"table {table.where} has no insert deduplication window ({setting} = 0), and "
            f"{engine.where} is read by materialized views ({names}): a retried or resumed "
            "load could reach the views twice, so the loader does not write",
            source=engine.where,
            fix=f"ALTER TABLE {table.where} MODIFY SETTING {setting} = {SUGGESTED_WINDOW} "
            "(for the target and each view's table), then run the load again",
        )
    return views
