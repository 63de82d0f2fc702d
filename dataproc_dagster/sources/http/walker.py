"""Walk an endpoint's pages: the requests to send, loop detection and total counting.

The :class:`~dataproc_dagster.sources.http.pagination.Paginator` of the endpoint decides each
next request; :class:`PageWalker` holds what is shared by every style. The walker knows a
paginator only as :class:`PagingStyle` (what it calls), so this module does not import
``pagination`` (which builds on it): no import cycle, not even for type checking.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dataproc_dagster.core.errors import SourceError
from dataproc_dagster.sources.http.client import Page


def get_path(payload: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``payload``; a sentinel-free ``None`` when absent."""
    node = payload
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


@dataclass
class PageRequest:
    """One request to send: URL, query parameters, and the page's position (0-based)."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)
    index: int = 0


class PagingStyle(Protocol):
    """What :class:`PageWalker` needs of a paginator (``pagination.Paginator`` has it)."""

    @property
    def parallel(self) -> bool:
        """Pages can be fetched at once when the first response tells the total."""

    @property
    def max_pages(self) -> int | None:
        """Stop after this many pages."""

    def first_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The query parameters of the first request."""

    def page_params(self, params: dict[str, Any], index: int) -> dict[str, Any]:
        """The parameters of page ``index`` when pages are planned up front."""

    def total_pages(self, page: Page) -> int | None:
        """Pages in all, when the response tells."""

    def next_request(
        self, request: PageRequest, page: Page, records: int, walker: PageWalker
    ) -> PageRequest | None:
        """The request after ``request``."""


class PageWalker:
    """Walks the pages of one endpoint for a paginator (:class:`PagingStyle`).

    Args:
        paginator: The paging style and its settings.
        url: The first page's URL.
        params: Query parameters of the first request (the paging ones are added).
    """

    def __init__(self, paginator: PagingStyle, url: str, params: Mapping[str, Any]) -> None:
        self.paginator = paginator
        self.url = url
        self.params = dict(params)
        self._seen: set[str] = set()

    def first(self) -> PageRequest:
        """The first request."""
        return PageRequest(self.url, self.paginator.first_params(dict(self.params)), 0)

    def total_pages(self, page: Page) -> int | None:
        """Pages in all, when the response tells (``page_number`` and ``offset`` only)."""
        return self.paginator.total_pages(page)

    def planned(self, first: Page) -> list[PageRequest] | None:
        """Every request after the first when the total is known from it, else ``None``."""
        p = self.paginator
        if not p.parallel:
            return None
        pages = p.total_pages(first)
        if pages is None:
            return None
        if p.max_pages is not None:
            pages = min(pages, p.max_pages)
        return [
            PageRequest(self.url, p.page_params(dict(self.params), i), i) for i in range(1, pages)
        ]

    def next(self, request: PageRequest, page: Page, records: int) -> PageRequest | None:
        """The request after ``request`` (which answered ``page`` with ``records`` records)."""
        p = self.paginator
        if p.max_pages is not None and request.index + 1 >= p.max_pages:
            return None
        return p.next_request(request, page, records, self)

    def follow(self, target: str, page: Page, index: int) -> PageRequest:
        """The request for a next URL the server handed out (sent as it is)."""
        self.check_loop(target, page, "next URL")
        return PageRequest(target, {}, index)

    def check_loop(self, token: str, page: Page, what: str) -> None:
        """Fail when the server hands out the same cursor or next URL twice."""
        if token in self._seen:
            raise SourceError(
                f"the API sent the same {what} twice; paging would never end",
                source=page.url,
                fix="check the paginator settings (cursor_path / next_url_path), or set max_pages",
            )
        self._seen.add(token)


def count_at(page: Page, path: str | None) -> int | None:
    """The count at JSON ``path`` of the page, ``None`` when unset or absent."""
    return as_count(get_path(page.payload, path), path, page) if path else None


def pages_of(total: int | None, size: int) -> int | None:
    """Pages needed for ``total`` records of ``size`` each (``None`` when unknown)."""
    return None if total is None else math.ceil(total / size)


def as_count(value: Any, path: str | None, page: Page) -> int | None:
    """``value`` as a count, ``None`` when absent; a non-number is the server's error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SourceError(
            f"the total at {path!r} is {value!r}, not a number",
            source=page.url,
            fix="point total_path / total_pages_path at a numeric field, or leave it unset",
        )
    try:
        return int(value)
    except ValueError:
        raise SourceError(
            f"the total at {path!r} is {value!r}, not a number",
            source=page.url,
            fix="point total_path / total_pages_path at a numeric field, or leave it unset",
        ) from None
