"""Reading a native SQL query: paged when ordered, else one checked request (see `paging`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pandas as pd

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.metabase.client import MetabaseClient
from dataproc_dagster.sources.metabase.paging import (
    DEFAULT_PAGE_SIZE,
    ReadMethod,
    ReadStats,
    check_method,
    check_page_size,
    export_rows,
    page_target,
    probe_columns,
    read_pages,
    run_count,
    run_dataset,
    to_frame,
)
from dataproc_dagster.sources.metabase.responses import preview_query


def native_query(
    database_id: int, sql: str, variables: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A native query body for ``database_id``; ``variables`` fill ``{{name}}`` text variables
    as Metabase parameters (Metabase binds them; they are never pasted into the SQL here)."""
    values = dict(variables or {})
    tags = {
        name: {"id": f"dataproc-{name}", "name": name, "display-name": name, "type": "text"}
        for name in values
    }
    body: dict[str, Any] = {
        "database": int(database_id),
        "type": "native",
        "native": {"query": sql, "template-tags": tags},
    }
    if values:
        body["parameters"] = [
            {
                "id": f"dataproc-{name}",
                "type": "category",
                "target": ["variable", ["template-tag", name]],
                "value": value,
            }
            for name, value in values.items()
        ]
    return body


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
    method: ReadMethod | str = ReadMethod.DATASET,
    database_label: str = "",
    log: Callable[[str], None] | None = None,
    stats: ReadStats | None = None,
    variables: Mapping[str, str] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the rows of a native SQL query, one DataFrame per page.

    With ``order_by`` (an SQL ORDER BY list that makes the order unique) the query is wrapped
    as ``SELECT * FROM (<sql>) ORDER BY .. LIMIT page OFFSET m`` and read page by page. Without
    it the query runs as one request with raised caps; when that result may have been capped
    the read fails and asks for ``order_by`` instead of returning a cut result. ``variables``
    fill the query's ``{{name}}`` variables (a partition's window) in every request.

    Raises:
        ConfigError: Bad method / page size / empty SQL.
        MetabaseQueryError: Metabase reported the query failed.
        SourceError: A possibly capped result without ``order_by``; transport failures.
    """
    method = check_method(method, client.source)
    check_page_size(page_size, method, client.source)
    if not sql or not sql.strip():
        raise ConfigError("native_query is empty", source=client.source, fix="give the SQL to run")
    label = database_label or f"database {database_id}"
    stats = stats if stats is not None else ReadStats(method=method.value, page_size=page_size)
    log = log or (lambda _message: None)
    started = time.perf_counter()
    cols: list[dict[str, Any]] = []
    tz = "UTC"
    if method == ReadMethod.EXPORT:
        probe = probe_columns(client, native_query(database_id, sql, variables), label, stats)
        cols = probe["data"]["cols"]
        tz = str(probe["data"].get("results_timezone") or "UTC")

    flagged = False

    def fetch(text: str) -> list[Any]:
        nonlocal cols, tz, flagged
        q = native_query(database_id, text, variables)
        if method == ReadMethod.EXPORT:
            return export_rows(client, q, cols, label, stats)
        data = run_dataset(client, q, label, stats)["data"]
        cols = data.get("cols") or []
        tz = str(data.get("results_timezone") or "UTC")
        flagged = data.get("rows_truncated") is not None
        rows: list[Any] = data["rows"]
        return rows

    def count() -> int:
        inner = sql.strip().rstrip(";").rstrip()
        text = f"SELECT COUNT(*) AS dataproc_count FROM (\n{inner}\n) AS dataproc_counted"
        return run_count(client, native_query(database_id, text, variables), label, stats)

    if not order_by:
        text = sql if limit is None else wrap_native(sql, order_by=None, limit=limit)
        rows = fetch(text)
        n = len(rows)
        # /api/dataset flags an unpaged result that reached its cap (reference section 5); an
        # export stops at the download limit without a flag (section 6): count those.
        if (flagged or method == ReadMethod.EXPORT) and (limit is None or n < limit):
            total = page_target(count(), limit)
            if n < total:
                raise SourceError(
                    f"the native query returned {n} rows but Metabase counts {total} rows for "
                    "it: the answer was cut at a row limit (rows_truncated, or the download "
                    f"row limit of an export) | query: "
                    f"{preview_query(native_query(database_id, sql, variables))}",
                    source=f"{client.source} {label}",
                    fix="set order_by (columns that make the order unique, e.g. 'id') so that "
                    "the query is read in pages, or set limit to at most the rows you need",
                )
        if rows:
            yield to_frame(rows, cols, tz, label)
            stats.rows += n
            stats.pages += 1
        stats.seconds += time.perf_counter() - started
        return

    def fetch_page(offset: int, items: int) -> list[Any]:
        return fetch(wrap_native(sql, order_by=order_by, limit=items, offset=offset))

    pages = read_pages(fetch_page, count, limit, page_size, False, label, log, stats)
    for rows in pages:
        yield to_frame(rows, cols, tz, label)
    stats.seconds += time.perf_counter() - started
