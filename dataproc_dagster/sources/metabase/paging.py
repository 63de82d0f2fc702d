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

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd

from dataproc_dagster.core.choices import parse_choice
from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.metabase.client import MetabaseClient
from dataproc_dagster.sources.metabase.types import rows_to_frame

DATASET_CAP = 2000
AGGREGATED_CAP = 10_000
ABSOLUTE_MAX = 1_048_575
DEFAULT_PAGE_SIZE = 20_000
RAISED_CONSTRAINTS = {"max-results": ABSOLUTE_MAX, "max-results-bare-rows": ABSOLUTE_MAX}
# Plain JSON numbers instead of stringified integers; strings are still parsed back if sent.
MIDDLEWARE = {"js-int-to-string?": False}


class ReadMethod(StrEnum):
    """How rows are read from Metabase."""

    DATASET = "dataset"  # POST /api/dataset with raised caps, paged
    EXPORT = "export"  # POST /api/dataset/json


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


def check_method(method: ReadMethod | str, source: str) -> ReadMethod:
    """``method`` as a :class:`ReadMethod`; :class:`ConfigError` when it is unknown."""
    return parse_choice(ReadMethod, method, what="Metabase read method", source=source)


def check_page_size(page_size: int, method: str, source: str) -> int:
    """Validate the page size: 1..1,048,575 rows."""
    if not 0 < page_size <= ABSOLUTE_MAX:
        raise ConfigError(
            f"page_size {page_size} is out of range for {method}",
            source=source,
            fix=f"use 1..{ABSOLUTE_MAX} (default {DEFAULT_PAGE_SIZE})",
        )
    return page_size


def read_pages(
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
        if total is None or read < page_target(total, limit):
            total = count()
        if read >= page_target(total, limit):
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


def page_target(total: int, limit: int | None) -> int:
    """The rows a read must deliver: the count of the source, or ``limit`` if smaller."""
    return total if limit is None else min(total, limit)


# -- requests -----------------------------------------------------------------------------


def run_dataset(
    client: MetabaseClient, query: dict[str, Any], label: str, stats: ReadStats
) -> dict[str, Any]:
    """Run ``query`` through ``/api/dataset`` with the caps raised; the completed body."""
    body = {**query, "constraints": RAISED_CONSTRAINTS, "middleware": MIDDLEWARE}
    stats.requests += 1
    return client.run_query(body, database_label=label)


def run_count(client: MetabaseClient, query: dict[str, Any], label: str, stats: ReadStats) -> int:
    """The one number a count query answers (its first cell)."""
    rows = run_dataset(client, query, label, stats)["data"]["rows"]
    stats.counts += 1
    try:
        return int(rows[0][0])
    except (IndexError, KeyError, TypeError, ValueError):
        raise SourceError(
            f"the count of the source answered {str(rows)[:80]!r}, not one number",
            source=f"{client.source} {label}",
            fix="check that the database supports COUNT aggregations in Metabase",
        ) from None


def probe_columns(
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


def export_rows(
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


def to_frame(
    rows: Sequence[Sequence[Any]], cols: Sequence[dict[str, Any]], tz: str, label: str
) -> pd.DataFrame:
    """The rows of one page as a DataFrame typed from Metabase's ``cols``."""
    try:
        return rows_to_frame(rows, cols, timezone=tz)
    except ValueError as exc:
        raise SourceError(
            f"cannot convert the result: {exc}",
            source=label,
            fix="check the field's type in Metabase (Admin > Table Metadata), or cast the "
            "column in a native query",
        ) from exc
