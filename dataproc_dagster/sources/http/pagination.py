"""Pagination styles: which request comes next, and when every page is known up front.

One class per style (:class:`PageNumberPaginator`, :class:`CursorPaginator`, ...), registered
by name in :data:`PAGINATORS`; the run config's ``paginator.style`` picks the class there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar
from urllib.parse import urljoin

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.http.client import Page
from dataproc_dagster.sources.http.walker import (
    PageRequest,
    PageWalker,
    count_at,
    get_path,
    pages_of,
)

DEFAULT_PAGE_SIZE = 100
_WHERE = "HTTP extractor paginator"


def _require(condition: bool, message: str, fix: str) -> None:
    if not condition:
        raise ConfigError(message, source=_WHERE, fix=fix)


def _require_path(value: str | None, option: str, what: str, example: str) -> None:
    style = option.removesuffix("_path")
    _require(
        bool(value),
        f"{style} pagination needs {option}, the JSON path of {what}",
        f"set {option}, e.g. {option}='{example}'",
    )


@dataclass(frozen=True, kw_only=True)
class Paginator:
    """How an endpoint pages: one subclass per style, built with the helpers at the end of this
    module (``page_number(...)``, ``cursor(...)``, ...) or by name with :func:`make_paginator`.

    Attributes:
        page_size: Records asked for per page (see each style).
        max_pages: Stop after this many pages (any style).
    """

    style: ClassVar[str]
    #: Pages can be fetched at once when the first response tells the total.
    parallel: ClassVar[bool] = False

    page_size: int | None = None
    max_pages: int | None = None

    def __post_init__(self) -> None:
        _require(
            self.page_size is None or self.page_size >= 1,
            "page_size must be at least 1",
            "set page_size",
        )
        _require(
            self.max_pages is None or self.max_pages >= 1,
            "max_pages must be at least 1",
            "set max_pages",
        )

    @property
    def size(self) -> int:
        """Records asked for per page (``page_size``, else 100)."""
        return self.page_size if self.page_size is not None else DEFAULT_PAGE_SIZE

    def describe(self) -> str:
        """A short description for messages and metadata."""
        return f"{self.style} pagination"

    def first_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The query parameters of the first request, given the endpoint's ``params``."""
        return params

    def page_params(self, params: dict[str, Any], index: int) -> dict[str, Any]:
        """The parameters of page ``index`` (0-based) when pages are planned up front."""
        raise NotImplementedError(f"{self.style} pages cannot be planned")

    def total_pages(self, page: Page) -> int | None:
        """Pages in all, when the response tells (parallel styles only)."""
        return None

    def next_request(
        self, request: PageRequest, page: Page, records: int, walker: PageWalker
    ) -> PageRequest | None:
        """The request after ``request`` (which answered ``page`` with ``records`` records)."""
        return None


@dataclass(frozen=True, kw_only=True)
class _SizeOnRequest(Paginator):
    """A style where the server decides the next request; the size is sent only when set.

    Attributes:
        size_param: Parameter that sends ``page_size`` on the first request (a cursor request
            carries it on every page); ``None`` sends none.
    """

    size_param: str | None = "per_page"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(
            self.page_size is None or bool(self.size_param),
            f"page_size on {self.style} paging needs size_param, the query parameter the API "
            "reads the page size from; without it the size could not be sent",
            f"set size_param (e.g. 'limit' or 'per_page') next to page_size={self.page_size}, "
            "or drop page_size to take the API's default",
        )

    def first_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` plus the page size, when one is set."""
        if self.page_size is not None and self.size_param:
            params[self.size_param] = self.page_size
        return params


@dataclass(frozen=True, kw_only=True)
class SinglePaginator(Paginator):
    """No paging: one request."""

    style: ClassVar[str] = "single"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(
            self.page_size is None,
            "page_size was given but single() sends one request and no page size",
            "choose the paging style of the API (page_number, offset, cursor, ...), or pass "
            "the size in params",
        )


@dataclass(frozen=True, kw_only=True)
class PageNumberPaginator(Paginator):
    """``?page=N&per_page=M`` paging; stops on the total, an empty page, or ``max_pages``.

    Attributes:
        page_size: Records per page (default 100).
        page_param: Page number parameter.
        first_page: Number of the first page, 0 or 1.
        size_param: Parameter that sends the page size; ``None`` sends none.
        total_pages_path: JSON path of the total page count.
        total_path: JSON path of the total record count.
    """

    style: ClassVar[str] = "page_number"
    parallel: ClassVar[bool] = True

    page_size: int | None = DEFAULT_PAGE_SIZE
    page_param: str = "page"
    first_page: int = 1
    size_param: str | None = "per_page"
    total_pages_path: str | None = None
    total_path: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(
            self.first_page in (0, 1),
            f"first_page must be 0 or 1, got {self.first_page}",
            "set first_page=0 for 0-based page numbers, 1 otherwise",
        )

    def first_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` plus the first page number and the page size."""
        return self.page_params(params, 0)

    def page_params(self, params: dict[str, Any], index: int) -> dict[str, Any]:
        """``params`` plus page number ``first_page + index`` and the page size."""
        params[self.page_param] = self.first_page + index
        if self.size_param:
            params[self.size_param] = self.size
        return params

    def total_pages(self, page: Page) -> int | None:
        """From ``total_pages_path``, else ``total_path`` divided by the page size."""
        if self.total_pages_path:
            value = count_at(page, self.total_pages_path)
            if value is not None:
                return value
        return pages_of(count_at(page, self.total_path), self.size)

    def next_request(
        self, request: PageRequest, page: Page, records: int, walker: PageWalker
    ) -> PageRequest | None:
        """The next page number, until an empty page or the total."""
        if records == 0:
            return None
        index = request.index + 1
        total_pages = self.total_pages(page)
        if total_pages is not None and index >= total_pages:
            return None
        return PageRequest(request.url, self.page_params(dict(walker.params), index), index)


@dataclass(frozen=True, kw_only=True)
class OffsetPaginator(Paginator):
    """``?offset=N&limit=M`` paging; stops on the total, an empty page, or ``max_pages``.

    Attributes:
        page_size: Records per page (default 100).
        offset_param: Offset parameter.
        limit_param: Limit parameter (sends the page size).
        total_path: JSON path of the total record count.
    """

    style: ClassVar[str] = "offset"
    parallel: ClassVar[bool] = True

    page_size: int | None = DEFAULT_PAGE_SIZE
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_path: str | None = None

    def first_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` plus offset 0 and the limit."""
        return self.page_params(params, 0)

    def page_params(self, params: dict[str, Any], index: int) -> dict[str, Any]:
        """``params`` plus the offset of page ``index`` and the limit."""
        params[self.offset_param] = index * self.size
        params[self.limit_param] = self.size
        return params

    def total_pages(self, page: Page) -> int | None:
        """``total_path`` divided by the page size."""
        return pages_of(count_at(page, self.total_path), self.size)

    def next_request(
        self, request: PageRequest, page: Page, records: int, walker: PageWalker
    ) -> PageRequest | None:
        """The offset after the records received, until an empty page or the total."""
        if records == 0:
            return None
        next_offset = int(request.params[self.offset_param]) + records
        total = count_at(page, self.total_path)
        if total is not None and next_offset >= total:
            return None
        params = {**request.params, self.offset_param: next_offset}
        return PageRequest(request.url, params, request.index + 1)


@dataclass(frozen=True, kw_only=True)
class CursorPaginator(_SizeOnRequest):
    """Cursor paging: the value at ``cursor_path`` is sent back as ``cursor_param``.

    Attributes:
        cursor_path: JSON path of the next cursor.
        cursor_param: Parameter that sends the cursor back.
    """

    style: ClassVar[str] = "cursor"

    cursor_path: str | None = None
    cursor_param: str = "cursor"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_path(self.cursor_path, "cursor_path", "the next cursor", "meta.next_cursor")

    def next_request(
        self, request: PageRequest, page: Page, records: int, walker: PageWalker
    ) -> PageRequest | None:
        """The same request with the next cursor, until no cursor or an empty page."""
        assert self.cursor_path is not None
        value = get_path(page.payload, self.cursor_path)
        if value in (None, "", False) or records == 0:
            return None
        token = str(value)
        walker.check_loop(token, page, "cursor")
        params = {**request.params, self.cursor_param: token}
        return PageRequest(request.url, params, request.index + 1)


@dataclass(frozen=True, kw_only=True)
class NextUrlPaginator(_SizeOnRequest):
    """Follow the full (or relative) URL found at ``next_url_path``.

    Attributes:
        next_url_path: JSON path of the next page's URL (followed as the server wrote it).
    """

    style: ClassVar[str] = "next_url"

    next_url_path: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_path(self.next_url_path, "next_url_path", "the next page's URL", "links.next")

    def next_request(
        self, request: PageRequest, page: Page, records: int, walker: PageWalker
    ) -> PageRequest | None:
        """The URL at ``next_url_path``, joined to the page's URL, until there is none."""
        assert self.next_url_path is not None
        value = get_path(page.payload, self.next_url_path)
        if not value:
            return None
        if not isinstance(value, str):
            raise SourceError(
                f"next_url_path {self.next_url_path!r} holds a {type(value).__name__}, not a URL",
                source=page.url,
                fix="set next_url_path to the field holding the next page's URL",
            )
        return walker.follow(urljoin(page.raw_url, value), page, request.index + 1)


@dataclass(frozen=True, kw_only=True)
class LinkHeaderPaginator(_SizeOnRequest):
    """Follow RFC 8288 ``Link: <...>; rel="next"`` headers."""

    style: ClassVar[str] = "link_header"

    def next_request(
        self, request: PageRequest, page: Page, records: int, walker: PageWalker
    ) -> PageRequest | None:
        """The ``rel="next"`` target, until the response has none."""
        if not page.next_link:
            return None
        return walker.follow(urljoin(page.raw_url, page.next_link), page, request.index + 1)


#: The paging styles by name: run config and :func:`make_paginator` build from this registry.
PAGINATORS: dict[str, type[Paginator]] = {
    cls.style: cls
    for cls in (
        SinglePaginator,
        PageNumberPaginator,
        OffsetPaginator,
        CursorPaginator,
        NextUrlPaginator,
        LinkHeaderPaginator,
    )
}
PAGINATION_STYLES = tuple(PAGINATORS)


def paginator_class(style: str) -> type[Paginator]:
    """The paginator class registered as ``style``.

    Raises:
        ConfigError: For an unknown style, listing the known ones.
    """
    try:
        return PAGINATORS[style]
    except KeyError:
        raise ConfigError(
            f"unknown pagination style {style!r}",
            source=_WHERE,
            fix=f"use one of {', '.join(PAGINATORS)}",
        ) from None


def option_names(style: str) -> tuple[str, ...]:
    """The options a style accepts (its dataclass fields)."""
    return tuple(f.name for f in fields(paginator_class(style)))


def make_paginator(style: str, **options: Any) -> Paginator:
    """The paginator of ``style`` with ``options``, e.g. ``make_paginator("cursor",
    cursor_path="meta.next")``.

    Raises:
        ConfigError: For an unknown style (listing the known ones), an option the style does
            not take (listing the ones it takes) or an invalid value.
    """
    known = option_names(style)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"{style} pagination takes no option {', '.join(unknown)}",
            source=_WHERE,
            fix=f"use only {', '.join(known)} with {style} pagination",
        )
    return paginator_class(style)(**options)


def paginator_from_config(config: Mapping[str, Any]) -> Paginator:
    """The paginator of a run config ``paginator`` block: ``style`` picks the class.

    The run-config schema lists the options of every style with their defaults, so options
    that belong to other styles are ignored here.

    Raises:
        ConfigError: For an unknown style or an invalid value.
    """
    style = str(config.get("style") or "single")
    known = option_names(style)
    return make_paginator(style, **{k: v for k, v in config.items() if k in known})


# The helpers a pipeline author writes, e.g. ``page_number(page_size=50, total_path="total")``.
single = SinglePaginator
page_number = PageNumberPaginator
offset = OffsetPaginator
cursor = CursorPaginator
next_url = NextUrlPaginator
link_header = LinkHeaderPaginator
