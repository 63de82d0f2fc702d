"""Every paginator against the real test API, sequential and concurrent."""

from __future__ import annotations

import pytest

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.http.extractor import create_http_extractor
from dataproc_dagster.sources.http.pagination import (
    Paginator,
    cursor,
    link_header,
    next_url,
    offset,
    page_number,
    paginator_from_config,
    single,
)
from dataproc_dagster_tests.helpers.http_support import api_fixture, extract_all  # noqa: F401
from dataproc_dagster_tests.servers.http_api import RunningApi

ALL_IDS = list(range(1, 251))

CASES = [
    ("/pages", page_number(total_pages_path="meta.total_pages"), "data.items", 3),
    ("/pages", page_number(total_path="meta.total"), "data.items", 3),
    ("/pages", page_number(), "data.items", 4),  # no total: stops on the empty 4th page
    ("/pages0", page_number(first_page=0, total_pages_path="meta.total_pages"), "data.items", 3),
    ("/offset", offset(total_path="total"), None, 3),
    ("/offset", offset(), None, 4),
    ("/cursor", cursor(cursor_path="next_cursor"), "results", 3),
    ("/next", next_url(next_url_path="links.next"), "results", 3),
    ("/link", link_header(), None, 3),
    ("/single", single(), None, 1),
]


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize(("path", "paginator", "records_path", "requests"), CASES)
def test_every_record_arrives_once_in_order(
    api: RunningApi,
    path: str,
    paginator: Paginator,
    records_path: str | None,
    requests: int,
    concurrency: int,
) -> None:
    extractor = create_http_extractor(
        api.url + path, paginator=paginator, records_path=records_path, concurrency=concurrency
    )
    table = extract_all(extractor)
    assert table.column("id").to_pylist() == ALL_IDS
    assert table.column("owner_address_city").to_pylist()[:2] == ["city 0", "city 1"]
    assert len(api.state.requests_to(path)) == requests


def test_page_number_sends_page_and_size_parameters(api: RunningApi) -> None:
    paginator = page_number(page_param="page", size_param="per_page", page_size=50)
    extractor = create_http_extractor(
        api.url + "/pages", paginator=paginator, records_path="data.items", concurrency=1
    )
    extract_all(extractor)
    pages = [(p["page"], p["per_page"]) for p in api.state.requests_to("/pages")]
    assert pages == [("1", "50"), ("2", "50"), ("3", "50"), ("4", "50"), ("5", "50"), ("6", "50")]


def test_max_pages_stops_early(api: RunningApi) -> None:
    for paginator, path in [
        (page_number(max_pages=2), "/pages"),
        (cursor(cursor_path="next_cursor", max_pages=2), "/cursor"),
        (link_header(max_pages=2), "/link"),
    ]:
        records_path = "data.items" if path == "/pages" else None
        extractor = create_http_extractor(
            api.url + path, paginator=paginator, records_path=records_path
        )
        table = extract_all(extractor)
        assert table.column("id").to_pylist() == list(range(1, 201))


def test_known_total_fetches_pages_concurrently_in_order(api: RunningApi) -> None:
    api.state.delay = 0.05
    api.state.records = (
        api.state.records[:1000]
        if len(api.state.records) >= 1000
        else [dict(r, id=i + 1) for i, r in enumerate(list(api.state.records) * 4)]
    )
    extractor = create_http_extractor(
        api.url + "/pages",
        paginator=page_number(page_size=50, total_pages_path="meta.total_pages"),
        records_path="data.items",
        concurrency=4,
    )
    table = extract_all(extractor)
    assert table.column("id").to_pylist() == list(range(1, 1001))
    assert api.state.max_in_flight == 4


def test_cursor_paging_stays_sequential(api: RunningApi) -> None:
    api.state.delay = 0.02
    extractor = create_http_extractor(
        api.url + "/cursor", paginator=cursor(cursor_path="next_cursor"), concurrency=8
    )
    assert extract_all(extractor).num_rows == 250
    assert api.state.max_in_flight == 1


def test_offset_with_capped_limit_is_an_error_when_concurrent(api: RunningApi) -> None:
    api.state.max_page_size = 40
    extractor = create_http_extractor(
        api.url + "/offset", paginator=offset(total_path="total", page_size=100), concurrency=4
    )
    with pytest.raises(SourceError, match="returned 40 records for limit=100"):
        extract_all(extractor)


def test_offset_with_capped_limit_works_sequentially(api: RunningApi) -> None:
    api.state.max_page_size = 40
    extractor = create_http_extractor(
        api.url + "/offset", paginator=offset(total_path="total", page_size=100), concurrency=1
    )
    assert extract_all(extractor).column("id").to_pylist() == ALL_IDS


@pytest.mark.parametrize(
    ("path", "style", "records_path", "size_param"),
    [
        ("/cursor", "cursor", "results", "limit"),
        ("/next", "next_url", "results", "per_page"),
        ("/link", "link_header", None, "per_page"),
    ],
)
def test_page_size_is_sent_for_cursor_next_url_and_link_header(
    api: RunningApi, path: str, style: str, records_path: str | None, size_param: str
) -> None:
    # As the generic job's run config builds it from its paginator block.
    paginator = paginator_from_config(
        {
            "style": style,
            "cursor_path": "next_cursor",
            "next_url_path": "links.next",
            "page_size": 40,
            "size_param": size_param,
        }
    )
    extractor = create_http_extractor(
        api.url + path, paginator=paginator, records_path=records_path
    )
    table = extract_all(extractor)
    assert table.column("id").to_pylist() == ALL_IDS
    requests = api.state.requests_to(path)
    assert requests[0][size_param] == "40"
    assert len(requests) == 7  # ceil(250 / 40): the server used the size that was sent


@pytest.mark.parametrize("style", ["cursor", "next_url", "link_header"])
def test_page_size_without_a_size_param_is_refused(style: str) -> None:
    paths = {"cursor_path": "next_cursor", "next_url_path": "links.next"}
    with pytest.raises(ConfigError) as info:
        paginator_from_config({"style": style, "page_size": 40, "size_param": None, **paths})
    message = str(info.value)
    assert f"page_size on {style} paging" in message and "size_param" in message
