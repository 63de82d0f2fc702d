"""Reading a Metabase table (MBQL) in pages in a stable order (the page loop is in `paging`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.sources.metabase.client import MetabaseClient
from dataproc_dagster.sources.metabase.discovery import FieldInfo, MetabaseTable
from dataproc_dagster.sources.metabase.paging import (
    DEFAULT_PAGE_SIZE,
    ReadMethod,
    ReadStats,
    check_method,
    check_page_size,
    export_rows,
    probe_columns,
    read_pages,
    run_count,
    run_dataset,
    to_frame,
)


def table_query(
    table: MetabaseTable,
    *,
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] | None = None,
) -> tuple[dict[str, Any], list[FieldInfo]]:
    """The MBQL query reading ``table`` in a stable order, and the fields it selects.

    Raises:
        ConfigError: When a named column or order-by column is not a field of the table.
    """
    by_name = {f.name: f for f in table.fields}

    def lookup(name: str, what: str) -> FieldInfo:
        if name in by_name:
            return by_name[name]
        lowered = {f.name.lower(): f for f in table.fields}
        if name.lower() in lowered:
            return lowered[name.lower()]
        raise ConfigError(
            f"{what} {name!r} is not a field of table {table.qualified} (id {table.id}); "
            f"fields: {', '.join(by_name) or 'none synced'}",
            source=f"Metabase table {table.id}",
            fix="use a field name as Metabase shows it; a column added in the warehouse "
            "appears only after Metabase re-syncs the database",
        )

    if columns:
        selected = [lookup(c, "column") for c in columns]
    else:
        selected = [f for f in table.fields if f.selected_by_default]
    if not selected:
        raise ConfigError(
            f"table {table.qualified} (id {table.id}) has no readable fields",
            source=f"Metabase table {table.id}",
            fix="re-sync the database in Metabase, or check the fields' visibility",
        )
    if order_by:
        order = [lookup(c, "order_by column") for c in order_by]
    elif table.pk is not None:
        order = [table.pk]
    else:
        # No key known: ordering on every selected column is still stable (rows that tie
        # are identical, so which of them lands on which page does not matter).
        order = selected
    inner: dict[str, Any] = {
        "source-table": table.id,
        "fields": [["field", f.id, None] for f in selected],
        "order-by": [["asc", ["field", f.id, None]] for f in order],
    }
    return {"database": table.db_id, "type": "query", "query": inner}, selected


def read_table(
    client: MetabaseClient,
    table: MetabaseTable,
    *,
    limit: int | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] | None = None,
    method: ReadMethod | str = ReadMethod.DATASET,
    database_label: str = "",
    log: Callable[[str], None] | None = None,
    stats: ReadStats | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield every row of a table (or the first ``limit``), one DataFrame per page, in order.

    Raises:
        ConfigError: Bad columns / order_by / method / page size.
        MetabaseQueryError: Metabase reported the query failed.
        SourceError: Transport failures after retries, unusable answers.
    """
    method = check_method(method, client.source)
    check_page_size(page_size, method, client.source)
    query, selected = table_query(table, columns=columns, order_by=order_by)
    label = database_label or f"database {table.db_id}, table {table.qualified} (id {table.id})"
    stats = stats if stats is not None else ReadStats(method=method.value, page_size=page_size)
    log = log or (lambda _message: None)
    cols: list[dict[str, Any]] = [f.as_col() for f in selected]
    tz = "UTC"
    if method == ReadMethod.EXPORT:
        probe = probe_columns(client, query, label, stats)
        cols = probe["data"]["cols"]
        tz = str(probe["data"].get("results_timezone") or "UTC")

    def fetch(offset: int, items: int) -> list[Any]:
        nonlocal cols, tz
        # MBQL pages are numbered: the offset is always a multiple of ``items`` here.
        page = {"page": offset // items + 1, "items": items}
        q = {**query, "query": {**query["query"], "page": page}}
        if method == ReadMethod.EXPORT:
            return export_rows(client, q, cols, label, stats)
        data = run_dataset(client, q, label, stats)["data"]
        cols = data.get("cols") or cols
        tz = str(data.get("results_timezone") or tz)
        rows: list[Any] = data["rows"]
        return rows

    def count() -> int:
        inner = {k: v for k, v in query["query"].items() if k not in _NOT_IN_COUNT}
        counting = {**query, "query": {**inner, "aggregation": [["count"]]}}
        return run_count(client, counting, label, stats)

    started = time.perf_counter()
    for rows in read_pages(fetch, count, limit, page_size, True, label, log, stats):
        yield to_frame(rows, cols, tz, label)
    stats.seconds += time.perf_counter() - started


# What a count of a table query leaves out: the rows' shape, order and window.
_NOT_IN_COUNT = ("fields", "order-by", "page", "limit")
