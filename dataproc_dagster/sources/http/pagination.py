"""Pagination styles: which request comes next, and when every page is known up front."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.http.client import Page

PAGINATION_STYLES = ("single", "page_number", "offset", "cursor", "next_url", "link_header")
DEFAULT_PAGE_SIZE = 100
# Styles where the server decides the next request; a page size is only sent when asked for.
_SIZE_ON_REQUEST = ("cursor", "next_url", "link_header")

_MISSING = object()


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


@dataclass(frozen=True)
class Paginator:
    """How an endpoint pages. Build it with the helpers below (``page_number(...)``, ...).

    Attributes:
        style: One of ``single``, ``page_number``, ``offset``, ``cursor``, ``next_url``,
            ``link_header``.
        page_param: Page number parameter (``page_number``).
        first_page: Number of the first page, 0 or 1 (``page_number``).
        size_param: Parameter that sends ``page_size`` (``page_number``, ``cursor``,
            ``next_url``, ``link_header``; ``None`` sends none).
        offset_param: Offset parameter (``offset``).
        limit_param: Limit parameter (``offset``).
        page_size: Records asked for per page. ``page_number`` and ``offset`` default to 100;
            ``cursor``, ``next_url`` and ``link_header`` send it (with ``size_param``) only
            when set, on the first request (a cursor request carries it on every page; the
            next URLs a server hands out carry what it put in them).
        total_pages_path: JSON path of the total page count (``page_number``).
        total_path: JSON path of the total record count (``page_number``, ``offset``).
        cursor_path: JSON path of the next cursor (``cursor``).
        cursor_param: Parameter that sends the cursor back (``cursor``).
        next_url_path: JSON path of the next page's URL (``next_url``).
        max_pages: Stop after this many pages (any style).
    """

    style: str = "single"
    page_param: str = "page"
    first_page: int = 1
    size_param: str | None = "per_page"
    offset_param: str = "offset"
    limit_param: str = "limit"
    page_size: int | None = None
    total_pages_path: str | None = None
    total_path: str | None = None
    cursor_path: str | None = None
    cursor_param: str = "cursor"
    next_url_path: str | None = None
    max_pages: int | None = None

    def __post_init__(self) -> None:
        where = "HTTP extractor paginator"
        if self.style not in PAGINATION_STYLES:
            raise ConfigError(
                f"unknown pagination style {self.style!r}",
                source=where,
                fix=f"use one of {', '.join(PAGINATION_STYLES)}",
            )
        if self.style == "page_number" and self.first_page not in (0, 1):
            raise ConfigError(
                f"first_page must be 0 or 1, got {self.first_page}",
                source=where,
                fix="set first_page=0 for 0-based page numbers, 1 otherwise",
            )
        if self.page_size is not None and self.page_size < 1:
            raise ConfigError("page_size must be at least 1", source=where, fix="set page_size")
        if self.style == "single" and self.page_size is not None:
            raise ConfigError(
                "page_size was given but single() sends one request and no page size",
                source=where,
                fix="choose the paging style of the API (page_number, offset, cursor, ...), or "
                "pass the size in params",
            )
        if self.style in _SIZE_ON_REQUEST and self.page_size is not None and not self.size_param:
            raise ConfigError(
                f"page_size on {self.style} paging needs size_param, the query parameter the "
                "API reads the page size from; without it the size could not be sent",
                source=where,
                fix=f"set size_param (e.g. 'limit' or 'per_page') next to page_size="
                f"{self.page_size}, or drop page_size to take the API's default",
            )
        if self.max_pages is not None and self.max_pages < 1:
            raise ConfigError("max_pages must be at least 1", source=where, fix="set max_pages")
        if self.style == "cursor" and not self.cursor_path:
            raise ConfigError(
                "cursor pagination needs cursor_path, the JSON path of the next cursor",
                source=where,
                fix="set cursor_path, e.g. cursor_path='meta.next_cursor'",
            )
        if self.style == "next_url" and not self.next_url_path:
            raise ConfigError(
                "next_url pagination needs next_url_path, the JSON path of the next page's URL",
                source=where,
                fix="set next_url_path, e.g. next_url_path='links.next'",
            )

    @property
    def size(self) -> int:
        """Records asked for per page (``page_size``, else 100)."""
        return self.page_size if self.page_size is not None else DEFAULT_PAGE_SIZE

    @property
    def parallel(self) -> bool:
        """True for the styles whose pages can be fetched at once once the total is known."""
        return self.style in ("page_number", "offset")

    def describe(self) -> str:
        """A short description for messages and metadata."""
        return f"{self.style} pagination"


def single() -> Paginator:
    """No paging: one request."""
    return Paginator(style="single")


def page_number(
    *,
    page_param: str = "page",
    size_param: str | None = "per_page",
    page_size: int = DEFAULT_PAGE_SIZE,
    first_page: int = 1,
    total_pages_path: str | None = None,
    total_path: str | None = None,
    max_pages: int | None = None,
) -> Paginator:
    """``?page=N&per_page=M`` paging; stops on the total, an empty page, or ``max_pages``."""
    return Paginator(
        style="page_number",
        page_param=page_param,
        size_param=size_param,
        page_size=page_size,
        first_page=first_page,
        total_pages_path=total_pages_path,
        total_path=total_path,
        max_pages=max_pages,
    )


def offset(
    *,
    offset_param: str = "offset",
    limit_param: str = "limit",
    page_size: int = DEFAULT_PAGE_SIZE,
    total_path: str | None = None,
    max_pages: int | None = None,
) -> Paginator:
    """``?offset=N&limit=M`` paging; stops on the total, an empty page, or ``max_pages``."""
    return Paginator(
        style="offset",
        offset_param=offset_param,
        limit_param=limit_param,
        page_size=page_size,
        total_path=total_path,
        max_pages=max_pages,
    )


def cursor(
    *,
    cursor_path: str,
    cursor_param: str = "cursor",
    page_size: int | None = None,
    size_param: str | None = "per_page",
    max_pages: int | None = None,
) -> Paginator:
    """Cursor paging: the value at ``cursor_path`` is sent back as ``cursor_param``.

    ``page_size`` (optional) is sent as ``size_param`` on every request.
    """
    return Paginator(
        style="cursor",
        cursor_path=cursor_path,
        cursor_param=cursor_param,
        page_size=page_size,
        size_param=size_param,
        max_pages=max_pages,
    )


def next_url(
    *,
    next_url_path: str,
    page_size: int | None = None,
    size_param: str | None = "per_page",
    max_pages: int | None = None,
) -> Paginator:
    """Follow the full (or relative) URL found at ``next_url_path``.

    ``page_size`` (optional) is sent as ``size_param`` on the first request; the next URLs are
    followed as the server wrote them.
    """
    return Paginator(
        style="next_url",
        next_url_path=next_url_path,
        page_size=page_size,
        size_param=size_param,
        max_pages=max_pages,
    )


def link_header(
    *,
    page_size: int | None = None,
    size_param: str | None = "per_page",
    max_pages: int | None = None,
) -> Paginator:
    """Follow RFC 8288 ``Link: <...>; rel="next"`` headers.

    ``page_size`` (optional) is sent as ``size_param`` on the first request.
    """
    return Paginator(
        style="link_header", page_size=page_size, size_param=size_param, max_pages=max_pages
    )


@dataclass
class PageRequest:
    """One request to send: URL, query parameters, and the page's position (0-based)."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)
    index: int = 0


class PageWalker:
    """Walks the pages of one endpoint for a :class:`Paginator`.

    Args:
        paginator: The paging style and its settings.
        url: The first page's URL.
        params: Query parameters of the first request (the paging ones are added).
    """

    def __init__(self, paginator: Paginator, url: str, params: Mapping[str, Any]) -> None:
        self.paginator = paginator
        self.url = url
        self.params = dict(params)
        self._seen: set[str] = set()

    def first(self) -> PageRequest:
        """The first request."""
        p = self.paginator
        params = dict(self.params)
        if p.style == "page_number":
            params[p.page_param] = p.first_page
            if p.size_param:
                params[p.size_param] = p.size
        elif p.style == "offset":
            params[p.offset_param] = 0
            params[p.limit_param] = p.size
        elif p.style in _SIZE_ON_REQUEST and p.page_size is not None and p.size_param:
            params[p.size_param] = p.page_size
        return PageRequest(self.url, params, 0)

    def _page_request(self, index: int) -> PageRequest:
        p = self.paginator
        params = dict(self.params)
        if p.style == "page_number":
            params[p.page_param] = p.first_page + index
            if p.size_param:
                params[p.size_param] = p.size
        else:
            params[p.offset_param] = index * p.size
            params[p.limit_param] = p.size
        return PageRequest(self.url, params, index)

    def total_pages(self, page: Page) -> int | None:
        """Pages in all, when the response tells (``page_number`` and ``offset`` only)."""
        p = self.paginator
        if p.style == "page_number" and p.total_pages_path:
            value = _as_count(get_path(page.payload, p.total_pages_path), p.total_pages_path, page)
            if value is not None:
                return value
        if p.style in ("page_number", "offset") and p.total_path:
            total = _as_count(get_path(page.payload, p.total_path), p.total_path, page)
            if total is not None:
                return math.ceil(total / p.size)
        return None

    def planned(self, first: Page) -> list[PageRequest] | None:
        """Every request after the first when the total is known from it, else ``None``."""
        if not self.paginator.parallel:
            return None
        pages = self.total_pages(first)
        if pages is None:
            return None
        if self.paginator.max_pages is not None:
            pages = min(pages, self.paginator.max_pages)
        return [self._page_request(i) for i in range(1, pages)]

    def next(self, request: PageRequest, page: Page, records: int) -> PageRequest | None:
        """The request after ``request`` (which answered ``page`` with ``records`` records)."""
        p = self.paginator
        index = request.index + 1
        if p.style == "single" or (p.max_pages is not None and index >= p.max_pages):
            return None
        if p.style in ("page_number", "offset"):
            if records == 0:
                return None
            total_pages = self.total_pages(page)
            if p.style == "offset":
                next_offset = int(request.params[p.offset_param]) + records
                total = (
                    _as_count(get_path(page.payload, p.total_path), p.total_path, page)
                    if p.total_path
                    else None
                )
                if total is not None and next_offset >= total:
                    return None
                params = {**request.params, p.offset_param: next_offset}
                return PageRequest(request.url, params, index)
            if total_pages is not None and index >= total_pages:
                return None
            return self._page_request(index)
        if p.style == "cursor":
            assert p.cursor_path is not None
            value = get_path(page.payload, p.cursor_path)
            if value in (None, "", False) or records == 0:
                return None
            token = str(value)
            self._check_loop(token, page, "cursor")
            return PageRequest(request.url, {**request.params, p.cursor_param: token}, index)
        if p.style == "next_url":
            assert p.next_url_path is not None
            value = get_path(page.payload, p.next_url_path)
            if not value:
                return None
            if not isinstance(value, str):
                raise SourceError(
                    f"next_url_path {p.next_url_path!r} holds a {type(value).__name__}, not a URL",
                    source=page.url,
                    fix="set next_url_path to the field holding the next page's URL",
                )
            target = urljoin(page.raw_url, value)
        else:
            if not page.next_link:
                return None
            target = urljoin(page.raw_url, page.next_link)
        self._check_loop(target, page, "next URL")
        return PageRequest(target, {}, index)

    def _check_loop(self, token: str, page: Page, what: str) -> None:
        if token in self._seen:
            raise SourceError(
                f"the API sent the same {what} twice; paging would never end",
                source=page.url,
                fix="check the paginator settings (cursor_path / next_url_path), or set max_pages",
            )
        self._seen.add(token)


def _as_count(value: Any, path: str | None, page: Page) -> int | None:
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
