"""Paginator settings and the page walker's decisions, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.http.client import Page
from dataproc_dagster.sources.http.pagination import (
    PAGINATORS,
    CursorPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    cursor,
    link_header,
    make_paginator,
    next_url,
    offset,
    page_number,
    paginator_from_config,
)
from dataproc_dagster.sources.http.walker import PageWalker

URL = "http://api.test/items"


def page(payload: Any, url: str = URL, next_link: str | None = None) -> Page:
    return Page(url=url, raw_url=url, status=200, payload=payload, next_link=next_link)


def test_invalid_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown pagination style 'pages'"):
        make_paginator("pages")
    with pytest.raises(ConfigError, match="first_page must be 0 or 1"):
        page_number(first_page=2)
    with pytest.raises(ConfigError, match="cursor pagination needs cursor_path"):
        make_paginator("cursor")
    with pytest.raises(ConfigError, match="next_url pagination needs next_url_path"):
        make_paginator("next_url")


def test_the_helpers_pass_page_size_and_size_param_on() -> None:
    assert cursor(cursor_path="c", page_size=40, size_param="limit") == CursorPaginator(
        cursor_path="c", page_size=40, size_param="limit"
    )
    assert next_url(next_url_path="n", page_size=40).size_param == "per_page"
    assert link_header(page_size=40).page_size == 40
    assert page_number().size == 100 and offset(page_size=7).size == 7
    with pytest.raises(ConfigError, match="single\\(\\) sends one request and no page size"):
        make_paginator("single", page_size=40)


def test_page_count_from_total_records_plans_every_page() -> None:
    walker = PageWalker(page_number(page_size=50, total_path="meta.total"), URL, {"q": "x"})
    planned = walker.planned(page({"meta": {"total": 120}}))
    assert planned is not None
    assert [r.params for r in planned] == [
        {"q": "x", "page": 2, "per_page": 50},
        {"q": "x", "page": 3, "per_page": 50},
    ]


def test_offset_plans_offsets_and_respects_max_pages() -> None:
    walker = PageWalker(offset(page_size=10, total_path="total", max_pages=3), URL, {})
    planned = walker.planned(page({"total": 1000}))
    assert planned is not None
    assert [r.params["offset"] for r in planned] == [10, 20]


def test_a_non_numeric_total_is_an_error() -> None:
    walker = PageWalker(page_number(total_pages_path="meta.pages"), URL, {})
    with pytest.raises(SourceError, match=r"the total at 'meta\.pages' is 'many'"):
        walker.planned(page({"meta": {"pages": "many"}}))


def test_cursor_sent_twice_is_an_error() -> None:
    walker = PageWalker(cursor(cursor_path="next"), URL, {})
    first = walker.first()
    second = walker.next(first, page({"next": "abc"}), 10)
    assert second is not None and second.params["cursor"] == "abc"
    with pytest.raises(SourceError, match="same cursor twice"):
        walker.next(second, page({"next": "abc"}), 10)


def test_relative_next_url_is_joined_to_the_page_url() -> None:
    walker = PageWalker(next_url(next_url_path="links.next"), URL, {"per_page": 5})
    following = walker.next(walker.first(), page({"links": {"next": "/items?page=2"}}), 5)
    assert following is not None
    assert following.url == "http://api.test/items?page=2" and following.params == {}
    assert walker.next(following, page({"links": {"next": None}}), 5) is None


def test_the_registry_has_one_class_per_style() -> None:
    assert list(PAGINATORS) == [
        "single",
        "page_number",
        "offset",
        "cursor",
        "next_url",
        "link_header",
    ]
    assert len(set(PAGINATORS.values())) == len(PAGINATORS)
    assert all(cls.style == name for name, cls in PAGINATORS.items())
    assert type(make_paginator("offset", page_size=7)) is OffsetPaginator


def test_an_unknown_style_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        paginator_from_config({"style": "pages", "page_size": 10})
    text = str(caught.value)
    assert "unknown pagination style 'pages'" in text
    assert "single, page_number, offset, cursor, next_url, link_header" in text


def test_an_option_of_another_style_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as caught:
        make_paginator("offset", cursor_path="next")
    text = str(caught.value)
    assert "offset pagination takes no option cursor_path" in text
    assert "offset_param" in text and "limit_param" in text


def test_run_config_block_picks_the_class_and_ignores_other_styles_defaults() -> None:
    # The run-config schema fills in every style's options with their defaults.
    block = {
        "style": "page_number",
        "page_param": "p",
        "first_page": 0,
        "size_param": "size",
        "offset_param": "offset",
        "limit_param": "limit",
        "page_size": 25,
        "total_pages_path": None,
        "total_path": "meta.total",
        "cursor_path": None,
        "cursor_param": "cursor",
        "next_url_path": None,
        "max_pages": None,
    }
    paginator = paginator_from_config(block)
    assert paginator == PageNumberPaginator(
        page_param="p", first_page=0, size_param="size", page_size=25, total_path="meta.total"
    )
    assert PageWalker(paginator, URL, {}).first().params == {"p": 0, "size": 25}
    assert paginator_from_config({}) == make_paginator("single")
