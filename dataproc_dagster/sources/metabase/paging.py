"""Reading whole results past Metabase's row limits, in order, in pages.

``POST /api/dataset`` caps every result at 2000 rows (native SQL too) and flags the cap only
sometimes (``rows_truncated`` is absent when MBQL ``page`` is used and present on an exact-2000
result); an export stops at the admin's download row limit (any number, e.g. 1,500) with no
flag at all. So a short answer is never taken on trust, and its size is never read as a hint:

* every request raises the caps with ``constraints`` (honoured by current Metabase, reference
  section 5) so that one request can carry a whole page of ``page_size`` rows;
* pages are read with a stable order (MBQL ``page`` + ``order-by`` on the primary key or on
  every column; native SQL wrapped as ``ORDER BY <order_by> LIMIT n OFFSET m``);
* a read that ends (a page shorter than asked, or empty) is confirmed against a count of the
  same source: one MBQL ``count`` aggregation (or ``SELECT COUNT(*)`` around the native SQL)
  through ``/api/dataset``. When rows are missing the server cut the page at its limit: reading
  goes on in pages of that size, or fails when the pages cannot continue at that size. Every
  row arrives or the read fails;
* a native query without ``order_by`` runs as one request; when the answer may have been cut
  (an export, or a ``rows_truncated`` flag) it is checked against a count and fails when rows
  are missing, rather than returning a silently cut result.

The export endpoint (``/api/dataset/json``) is available as ``method="export"``; its rows are
keyed by display name and formatted differently, so a one-row probe supplies the columns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.metabase.client import MetabaseClient, preview_query
from dataproc_dagster.sources.metabase.discovery import FieldInfo, TableInfo
from dataproc_dagster.sources.metabase.types import rows_to_frame

DATASET_CAP = 2000
AGGREGATED_CAP = 10_000
ABSOLUTE_MAX = 1_048_575
DEFAULT_PAGE_SIZE = 20_000
METHODS = ("dataset", "export")
RAISED_CONSTRAINTS = {"max-results": ABSOLUTE_MAX, "max-results-bare-rows": ABSOLUTE_MAX}
# Plain JSON numbers instead of stringified integers; strings are still parsed back if sent.
MIDDLEWARE = {"js-int-to-string?": False}


@dataclass
class ReadStats:
    """What a read did, for logs and op metadata."""

    method: str
    page_size: int
    requests: int = 0
    rows: int = 0
    pages: int = 0
    capped_pages: int = 0
    counts: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def check_method(method: str, source: str) -> None:
    """Raise :class:`ConfigError` unless ``method`` is known."""
    if method not in METHODS:
        raise ConfigError(
            f"unknown Metabase read method {method!r}",
            source=source,
            fix=f"use one of {', '.join(METHODS)}",
        )


def check_page_size(page_size: int, method: str, source: str) -> int:
    """Validate the page size: 1..1,048,575 rows."""
    if not 0 < page_size <= ABSOLUTE_MAX:
        raise ConfigError(
            f"page_size {page_size} is out of range for {method}",
            source=source,
            fix=f"use 1..{ABSOLUTE_MAX} (default {DEFAULT_PAGE_SIZE})",
        )
    return page_size


# -- table (MBQL) -------------------------------------------------------------------------


def table_query(
    table: TableInfo,
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
    table: TableInfo,
    *,
    limit: int | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] | None = None,
    method: str = "dataset",
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
    check_method(method, client.source)
    check_page_size(page_size, method, client.source)
    query, selected = table_query(table, columns=columns, order_by=order_by)
    label = database_label or f"database {table.db_id}, table {table.qualified} (id {table.id})"
    stats = stats if stats is not None else ReadStats(method=method, page_size=page_size)
    log = log or (lambda _message: None)
    cols: list[dict[str, Any]] = [f.as_col() for f in selected]
    tz = "UTC"
    if method == "export":
        probe = _probe(client, query, label, stats)
        cols = probe["data"]["cols"]
        tz = str(probe["data"].get("results_timezone") or "UTC")

    def fetch(offset: int, items: int) -> list[Any]:
        nonlocal cols, tz
        # MBQL pages are numbered: the offset is always a multiple of ``items`` here.
        page = {"page": offset // items + 1, "items": items}
        q = {**query, "query": {**query["query"], "page": page}}
        if method == "export":
            return _export_rows(client, q, cols, label, stats)
        data = _dataset(client, q, label, stats)["data"]
        cols = data.get("cols") or cols
        tz = str(data.get("results_timezone") or tz)
        rows: list[Any] = data["rows"]
        return rows

    def count() -> int:
        inner = {k: v for k, v in query["query"].items() if k not in _NOT_IN_COUNT}
        counting = {**query, "query": {**inner, "aggregation": [["count"]]}}
        return _count(client, counting, label, stats)

    started = time.perf_counter()
    for rows in _read_pages(fetch, count, limit, page_size, True, label, log, stats):
        yield _frame(rows, cols, tz, label)
    stats.seconds += time.perf_counter() - started


# What a count of a table query leaves out: the rows' shape, order and window.
_NOT_IN_COUNT = ("fields", "order-by", "page", "limit")


def _read_pages(
    fetch: Callable[[int, int], list[Any]],
    count: Callable[[], int],
    limit: int | None,
    page_size: int,
    numbered: bool,
    label: str,
    log: Callable[[str], None],
    stats: ReadStats,
) -> Iterator[list[Any]]:
    """Yield the rows of each page, reading on until a count confirms every row arrived.

    ``fetch(offset, items)`` reads one page; ``count()`` counts the whole source. With
    ``numbered`` pages (MBQL ``page``), reading can only go on from an offset that is a
    multiple of the page size.
    """
    items = min(page_size, limit) if limit else page_size
    offset = 0
    number = 0
    total: int | None = None
    while limit is None or stats.rows < limit:
        rows = fetch(offset, items)
        number += 1
        n = len(rows)
        if n > items:
            raise SourceError(
                f"page {number} returned {n} rows, more than the {items} asked for",
                source=label,
                fix="this Metabase does not honour MBQL page / LIMIT; report it with its version",
            )
        if limit is not None and stats.rows + n > limit:
            rows = rows[: limit - stats.rows]
        if rows:
            yield rows
            stats.rows += len(rows)
            stats.pages += 1
        read = offset + n
        offset = read
        if n == items:
            continue
        # A short (or empty) page is the end, or the server cut it at a row limit that
        # nothing in the answer reveals: a count of the source tells which.
        if total is None or read < _target(total, limit):
            total = count()
        if read >= _target(total, limit):
            return
        if n == 0 or (numbered and read % n):
            raise SourceError(
                f"page {number} returned {n} of {items} rows but the source counts {total} rows "
                f"and {read} were read: rows are missing, and the pages cannot go on from row "
                f"{read}" + (f" in pages of {n}" if n else ""),
                source=label,
                fix="set page_size to at most the server's row limit"
                + (f" ({n} here)" if n else "")
                + ", or re-run if the data changed during the read",
            )
        stats.capped_pages += 1
        note = (
            f"page {number} returned {n} of {items} rows but the source counts {total} rows: "
            f"the server cuts answers at {n} rows (it ignores the request's constraints, or an "
            f"admin set a row limit); reading on in pages of {n}"
        )
        stats.notes.append(note)
        log(note)
        items = n


def _target(total: int, limit: int | None) -> int:
    return total if limit is None else min(total, limit)


# -- native SQL ---------------------------------------------------------------------------


def native_query(database_id: int, sql: str) -> dict[str, Any]:
    """A native query body for ``database_id``."""
    return {
        "database": int(database_id),
        "type": "native",
        "native": {"query": sql, "template-tags": {}},
    }


def wrap_native(sql: str, *, order_by: str | None, limit: int | None, offset: int = 0) -> str:
    """``SELECT * FROM (<sql>) AS q [ORDER BY ..] [LIMIT n [OFFSET m]]``; ``sql`` as written."""
    inner = sql.strip().rstrip(";").rstrip()
    text = f"SELECT * FROM (\n{inner}\n) AS dataproc_page"
    if order_by:
        text += f" ORDER BY {order_by}"
    if limit is not None:
        text += f" LIMIT {int(limit)}"
        if offset:
            text += f" OFFSET {int(offset)}"
    return text


def read_native(
    client: MetabaseClient,
    database_id: int,
    sql: str,
    *,
    limit: int | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    order_by: str | None = None,
    method: str = "dataset",
    database_label: str = "",
    log: Callable[[str], None] | None = None,
    stats: ReadStats | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the rows of a native SQL query, one DataFrame per page.

    With ``order_by`` (an SQL ORDER BY list that makes the order unique) the query is wrapped
    as ``SELECT * FROM (<sql>) ORDER BY .. LIMIT page OFFSET m`` and read page by page. Without
    it the query runs as one request with raised caps; when that result may have been capped
    the read fails and asks for ``order_by`` instead of returning a cut result.

    Raises:
        ConfigError: Bad method / page size / empty SQL.
        MetabaseQueryError: Metabase reported the query failed.
        SourceError: A possibly capped result without ``order_by``; transport failures.
    """
    check_method(method, client.source)
    check_page_size(page_size, method, client.source)
    if not sql or not sql.strip():
        raise ConfigError("native_query is empty", source=client.source, fix="give the SQL to run")
    label = database_label or f"database {database_id}"
    stats = stats if stats is not None else ReadStats(method=method, page_size=page_size)
    log = log or (lambda _message: None)
    started = time.perf_counter()
    cols: list[dict[str, Any]] = []
    tz = "UTC"
    if method == "export":
        probe = _probe(client, native_query(database_id, sql), label, stats)
        cols = probe["data"]["cols"]
        tz = str(probe["data"].get("results_timezone") or "UTC")

    flagged = False

    def fetch(text: str) -> list[Any]:
        nonlocal cols, tz, flagged
        q = native_query(database_id, text)
        if method == "export":
            return _export_rows(client, q, cols, label, stats)
        data = _dataset(client, q, label, stats)["data"]
        cols = data.get("cols") or []
        tz = str(data.get("results_timezone") or "UTC")
        flagged = data.get("rows_truncated") is not None
        rows: list[Any] = data["rows"]
        return rows

    def count() -> int:
        inner = sql.strip().rstrip(";").rstrip()
        text = f"SELECT COUNT(*) AS dataproc_count FROM (\n{inner}\n) AS dataproc_counted"
        return _count(client, native_query(database_id, text), label, stats)

    if not order_by:
        text = sql if limit is None else wrap_native(sql, order_by=None, limit=limit)
        rows = fetch(text)
        n = len(rows)
        # /api/dataset flags an unpaged result that reached its cap (reference section 5); an
        # export stops at the download limit without a flag (section 6): count those.
        if (flagged or method == "export") and (limit is None or n < limit):
            total = _target(count(), limit)
            if n < total:
                raise SourceError(
                    f"the native query returned {n} rows but Metabase counts {total} rows for "
                    "it: the answer was cut at a row limit (rows_truncated, or the download "
                    f"row limit of an export) | query: "
                    f"{preview_query(native_query(database_id, sql))}",
                    source=f"{client.source} {label}",
                    fix="set order_by (columns that make the order unique, e.g. 'id') so that "
                    "the query is read in pages, or set limit to at most the rows you need",
                )
        if rows:
            yield _frame(rows, cols, tz, label)
            stats.rows += n
            stats.pages += 1
        stats.seconds += time.perf_counter() - started
        return

    def fetch_page(offset: int, items: int) -> list[Any]:
        return fetch(wrap_native(sql, order_by=order_by, limit=items, offset=offset))

    pages = _read_pages(fetch_page, count, limit, page_size, False, label, log, stats)
    for rows in pages:
        yield _frame(rows, cols, tz, label)
    stats.seconds += time.perf_counter() - started


# -- shared -------------------------------------------------------------------------------


def _dataset(
    client: MetabaseClient, query: dict[str, Any], label: str, stats: ReadStats
) -> dict[str, Any]:
    body = {**query, "constraints": RAISED_CONSTRAINTS, "middleware": MIDDLEWARE}
    stats.requests += 1
    return client.run_query(body, database_label=label)


def _count(client: MetabaseClient, query: dict[str, Any], label: str, stats: ReadStats) -> int:
    """The one number a count query answers (its first cell)."""
    rows = _dataset(client, query, label, stats)["data"]["rows"]
    stats.counts += 1
    try:
        return int(rows[0][0])
    except (IndexError, KeyError, TypeError, ValueError):
        raise SourceError(
            f"the count of the source answered {str(rows)[:80]!r}, not one number",
            source=f"{client.source} {label}",
            fix="check that the database supports COUNT aggregations in Metabase",
        ) from None


def _probe(
    client: MetabaseClient, query: dict[str, Any], label: str, stats: ReadStats
) -> dict[str, Any]:
    """One row through ``/api/dataset``: the columns (names, display names, types) and zone."""
    body = {
        **query,
        "constraints": {"max-results": 1, "max-results-bare-rows": 1},
        "middleware": MIDDLEWARE,
    }
    stats.requests += 1
    return client.run_query(body, database_label=label)


def _export_rows(
    client: MetabaseClient,
    query: dict[str, Any],
    cols: Sequence[Mapping[str, Any]],
    label: str,
    stats: ReadStats,
) -> list[Any]:
    """Rows of a JSON export as positional lists in ``cols`` order (export keys = display names)."""
    names = [str(c.get("display_name") or c.get("name")) for c in cols]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(
            f"columns share the display name(s) {', '.join(map(repr, dupes))}; the JSON export "
            "keys rows by display name, so their values would collide",
            source=f"{client.source} {label}",
            fix="use method='dataset' (the default), or give the columns distinct names",
        )
    stats.requests += 1
    records = client.export(query, fmt="json", database_label=label)
    if not isinstance(records, list):
        raise SourceError("the JSON export is not an array of rows", source=client.source)
    try:
        rows = [[record.get(name) for name in names] for record in records]
    except AttributeError:
        raise SourceError(
            "the JSON export holds rows that are not objects", source=client.source
        ) from None
    if records and set(records[0]) - set(names):
        raise SourceError(
            f"the export's columns {sorted(records[0])} differ from the probe's {names}",
            source=f"{client.source} {label}",
            fix="re-run: the table's fields changed during the read",
        )
    return rows


def _frame(
    rows: Sequence[Sequence[Any]], cols: Sequence[dict[str, Any]], tz: str, label: str
) -> pd.DataFrame:
    try:
        return rows_to_frame(rows, cols, timezone=tz)
    except ValueError as exc:
        raise SourceError(
            f"cannot convert the result: {exc}",
            source=label,
            fix="check the field's type in Metabase (Admin > Table Metadata), or cast the "
            "column in a native query",
        ) from exc
