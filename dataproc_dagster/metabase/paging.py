"""Reading whole results past Metabase's 2000-row cap, in order, in pages.

``POST /api/dataset`` caps every result at 2000 rows (native SQL too) and flags the cap only
sometimes (``rows_truncated`` is absent when MBQL ``page`` is used and present on an exact-2000
result). This module never trusts a short answer blindly:

* every request raises the caps with ``constraints`` (honoured by current Metabase, reference
  section 5) so that one request can carry a whole page of ``page_size`` rows;
* pages are read with a stable order (MBQL ``page`` + ``order-by`` on the primary key or on
  every column; native SQL wrapped as ``ORDER BY <order_by> LIMIT n OFFSET m``);
* a page shorter than asked whose size looks like a cap (2000, 10000, 1048575, any multiple of
  1000, or a ``rows_truncated`` flag) is taken as "the server capped it": the page size drops to
  that size and reading goes on, so a server that ignores ``constraints`` still yields every row
  (one extra request at the end at worst);
* a native query without ``order_by`` runs as one request and fails loudly if its result may
  have been capped, rather than returning a silently cut result.

The export endpoint (``/api/dataset/json``) is available as ``method="export"``; its rows are
keyed by display name and formatted differently, so a one-row probe supplies the columns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dataproc_dagster.errors import ConfigError, SourceError
from dataproc_dagster.metabase.client import MetabaseClient, preview_query
from dataproc_dagster.metabase.discovery import FieldInfo, TableInfo
from dataproc_dagster.metabase.types import rows_to_frame

DATASET_CAP = 2000
AGGREGATED_CAP = 10_000
ABSOLUTE_MAX = 1_048_575
KNOWN_CAPS = frozenset({DATASET_CAP, AGGREGATED_CAP, ABSOLUTE_MAX})
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
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def looks_capped(rows: int, asked: int, flag: Any) -> bool:
    """True when a page of ``rows`` (< ``asked``) may have been cut by a server-side cap."""
    if rows <= 0 or rows >= asked:
        return False
    if isinstance(flag, int) and not isinstance(flag, bool) and flag == rows:
        return True
    return rows in KNOWN_CAPS or rows % 1000 == 0


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

    def fetch(q: dict[str, Any]) -> tuple[list[Any], Any, str]:
        nonlocal cols
        if method == "export":
            rows, flag = _export_rows(client, q, cols, label, stats)
            return rows, flag, tz
        data = _dataset(client, q, label, stats)["data"]
        cols = data.get("cols") or cols
        return data["rows"], data.get("rows_truncated"), str(data.get("results_timezone") or tz)

    yield from _page_mbql(query, fetch, lambda: cols, limit, page_size, label, log, stats)


def _page_mbql(
    query: dict[str, Any],
    fetch: Callable[[dict[str, Any]], tuple[list[Any], Any, str]],
    cols: Callable[[], list[dict[str, Any]]],
    limit: int | None,
    page_size: int,
    label: str,
    log: Callable[[str], None],
    stats: ReadStats,
) -> Iterator[pd.DataFrame]:
    started = time.perf_counter()
    items = min(page_size, limit) if limit else page_size
    offset = 0
    suspected: tuple[int, int] | None = None
    full_page_seen = False
    while limit is None or stats.rows < limit:
        if offset % items:
            raise SourceError(
                f"cannot page on: {offset} rows read is not a multiple of the page size {items}",
                source=label,
                fix=f"set page_size to a multiple of {items}",
            )
        page = {"page": offset // items + 1, "items": items}
        q = {**query, "query": {**query["query"], "page": page}}
        rows, flag, tz = fetch(q)
        n = len(rows)
        if n > items:
            raise SourceError(
                f"page {page['page']} returned {n} rows, more than the {items} asked for",
                source=label,
                fix="this Metabase does not honour MBQL page; report it with its version",
            )
        if limit is not None and stats.rows + n > limit:
            rows = rows[: limit - stats.rows]
        if rows:
            yield _frame(rows, cols(), tz, label)
            stats.rows += len(rows)
            stats.pages += 1
        _report_cap(suspected, n, stats, log)
        suspected = None
        # Only a first short page can be a cap: after a full page the server has shown that
        # it answers at least ``items`` rows, so a later short page is the end.
        if not full_page_seen and looks_capped(n, items, flag):
            suspected = (n, items)
            items = n
            offset += n
            continue
        if n < items:
            break
        full_page_seen = True
        offset += n
    stats.seconds += time.perf_counter() - started


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

    def fetch(text: str) -> tuple[list[Any], Any]:
        nonlocal cols, tz
        q = native_query(database_id, text)
        if method == "export":
            rows, flag = _export_rows(client, q, cols, label, stats)
            return rows, flag
        body = _dataset(client, q, label, stats)
        cols = body["data"].get("cols") or []
        tz = str(body["data"].get("results_timezone") or "UTC")
        return body["data"]["rows"], body["data"].get("rows_truncated")

    if not order_by:
        text = sql if limit is None else wrap_native(sql, order_by=None, limit=limit)
        rows, flag = fetch(text)
        n = len(rows)
        # /api/dataset flags a native result that reached its cap (whatever the cap is, and
        # also at exactly the cap); an export has no flag, only its fixed maximum.
        capped = flag is not None or (method == "export" and n == ABSOLUTE_MAX)
        if capped and (limit is None or n < limit):
            raise SourceError(
                f"the native query returned {n} rows and Metabase flagged them as reaching its "
                f"row cap (rows_truncated), so the result may be incomplete | "
                f"query: {preview_query(native_query(database_id, sql))}",
                source=f"{client.source} {label}",
                fix="set order_by (columns that make the order unique, e.g. 'id') so that the "
                "query is read in pages, or set limit to at most the rows you need",
            )
        if rows:
            yield _frame(rows, cols, tz, label)
            stats.rows += n
            stats.pages += 1
        stats.seconds += time.perf_counter() - started
        return

    items = min(page_size, limit) if limit else page_size
    offset = 0
    suspected: tuple[int, int] | None = None
    full_page_seen = False
    while limit is None or stats.rows < limit:
        rows, flag = fetch(wrap_native(sql, order_by=order_by, limit=items, offset=offset))
        n = len(rows)
        if n > items:
            raise SourceError(
                f"a page returned {n} rows, more than the LIMIT {items} asked for",
                source=f"{client.source} {label}",
                fix="check that order_by is a plain ORDER BY list",
            )
        if limit is not None and stats.rows + n > limit:
            rows = rows[: limit - stats.rows]
        if rows:
            yield _frame(rows, cols, tz, label)
            stats.rows += len(rows)
            stats.pages += 1
        _report_cap(suspected, n, stats, log)
        suspected = None
        if not full_page_seen and looks_capped(n, items, flag):
            suspected = (n, items)
            items = n
        elif n < items:
            break
        else:
            full_page_seen = True
        offset += n
    stats.seconds += time.perf_counter() - started


# -- shared -------------------------------------------------------------------------------


def _report_cap(
    suspected: tuple[int, int] | None, rows_after: int, stats: ReadStats, log: Callable[[str], None]
) -> None:
    """After a page that looked capped: if more rows followed, it was a cap; say so once."""
    if suspected is None:
        return
    if rows_after == 0:
        stats.notes.append(f"a short page of {suspected[0]} rows was the end (checked)")
        return
    stats.capped_pages += 1
    note = (
        f"a page returned {suspected[0]} of {suspected[1]} rows and more followed: the server "
        f"caps results at {suspected[0]} rows (it ignores the request's constraints); reading "
        f"on in pages of {suspected[0]}"
    )
    stats.notes.append(note)
    log(note)


def _dataset(
    client: MetabaseClient, query: dict[str, Any], label: str, stats: ReadStats
) -> dict[str, Any]:
    body = {**query, "constraints": RAISED_CONSTRAINTS, "middleware": MIDDLEWARE}
    stats.requests += 1
    return client.run_query(body, database_label=label)


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
) -> tuple[list[Any], Any]:
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
    # An export has no truncation flag: a full-cap result counts as possibly cut.
    flag = len(rows) if len(rows) == ABSOLUTE_MAX else None
    return rows, flag


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
