"""Retries and failures: 429 with Retry-After, 5xx, timeouts, bad bodies, dropped connections."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from dataproc_dagster.errors import SourceError
from dataproc_dagster.http.pagination import page_number, single
from dataproc_dagster.http.retry import RetryPolicy
from dataproc_dagster.ops.extractors.http import HttpExtractor, create_http_extractor
from dataproc_dagster_tests.integration.http_support import api_fixture, extract_all  # noqa: F401
from dataproc_dagster_tests.servers.http_api import RunningApi

FAST = RetryPolicy(max_attempts=4, backoff=0.01, max_backoff=0.05, max_total_wait=5)


def _pages(
    api: RunningApi, *, retry: RetryPolicy = FAST, timeout: float = 5.0, concurrency: int = 1
) -> HttpExtractor:
    return create_http_extractor(
        api.url + "/pages",
        paginator=page_number(total_pages_path="meta.total_pages"),
        records_path="data.items",
        retry=retry,
        timeout=timeout,
        concurrency=concurrency,
    )


@pytest.mark.parametrize("concurrency", [1, 4])
def test_429_waits_for_retry_after_seconds(api: RunningApi, concurrency: int) -> None:
    api.state.fault("429", path="/pages", when={"page": "2"}, retry_after="1")
    started = time.perf_counter()
    table = extract_all(_pages(api, concurrency=concurrency))
    elapsed = time.perf_counter() - started
    assert table.column("id").to_pylist() == list(range(1, 251))
    assert elapsed >= 1.0
    assert [p["page"] for p in api.state.requests_to("/pages")].count("2") == 2


def test_429_honours_retry_after_as_http_date(api: RunningApi) -> None:
    when = datetime.now(UTC) + timedelta(seconds=2)
    api.state.fault(
        "429", path="/pages", when={"page": "1"}, retry_after=format_datetime(when, usegmt=True)
    )
    started = time.perf_counter()
    assert extract_all(_pages(api)).num_rows == 250
    # The HTTP date has one-second resolution, so the wait is between 1 and 2 seconds.
    assert time.perf_counter() - started >= 0.9


def test_retry_after_beyond_max_total_wait_fails_with_a_clear_message(api: RunningApi) -> None:
    api.state.fault("429", path="/pages", when={"page": "1"}, retry_after="60")
    with pytest.raises(SourceError) as info:
        extract_all(_pages(api))
    message = str(info.value)
    assert "HTTP 429" in message and "would pass max_total_wait (5s)" in message
    assert "injected 429" in message and "page=1" in message


def test_503_then_success(api: RunningApi) -> None:
    api.state.fault("503", path="/pages", when={"page": "3"}, times=2)
    assert extract_all(_pages(api)).column("id").to_pylist() == list(range(1, 251))
    assert [p["page"] for p in api.state.requests_to("/pages")] == ["1", "2", "3", "3", "3"]


def test_503_every_time_fails_after_max_attempts(api: RunningApi) -> None:
    api.state.fault("503", path="/pages", when={"page": "2"}, times=100)
    with pytest.raises(SourceError) as info:
        extract_all(_pages(api))
    message = str(info.value)
    assert "[pipeline orders_sync]" in message
    assert "HTTP 503 Service Unavailable after 4 attempt(s)" in message
    assert "/pages?page=2" in message and "injected 503" in message


def test_other_4xx_fails_at_once(api: RunningApi) -> None:
    api.state.fault("404", path="/pages", when={"page": "2"}, times=100)
    with pytest.raises(SourceError, match=r"HTTP 404 Not Found.*check the URL"):
        extract_all(_pages(api))
    assert len(api.state.requests_to("/pages")) == 2


def test_timeout_is_retried(api: RunningApi) -> None:
    api.state.fault("timeout", path="/pages", when={"page": "2"}, seconds=1.0)
    assert extract_all(_pages(api, timeout=0.3)).num_rows == 250


def test_timeout_every_time_fails_naming_the_timeout(api: RunningApi) -> None:
    api.state.fault("timeout", path="/pages", when={"page": "2"}, seconds=0.6, times=100)
    retry = RetryPolicy(max_attempts=2, backoff=0.01, max_total_wait=5)
    with pytest.raises(SourceError) as info:
        extract_all(_pages(api, timeout=0.2, retry=retry))
    message = str(info.value)
    assert "request timed out after 2 attempt(s)" in message
    assert "raise the timeout (now 0.2s)" in message and "page=2" in message


def test_malformed_json_names_the_page(api: RunningApi) -> None:
    api.state.fault("malformed", path="/pages", when={"page": "2"})
    with pytest.raises(SourceError) as info:
        extract_all(_pages(api))
    message = str(info.value)
    assert "is not JSON" in message and "/pages?page=2" in message
    assert '{"data": {"items": [{"id": 1,' in message


def test_html_error_page_fails_at_once_with_the_body_start(api: RunningApi) -> None:
    api.state.fault("html", path="/pages", when={"page": "1"}, times=100)
    with pytest.raises(SourceError) as info:
        extract_all(_pages(api))
    message = str(info.value)
    assert "HTTP 500" in message and "<title>502 Bad Gateway</title>" in message
    assert len(api.state.log) == 1


def test_html_page_with_status_200_is_not_json(api: RunningApi) -> None:
    api.state.fault("html200", path="/single")
    extractor = create_http_extractor(api.url + "/single", paginator=single())
    with pytest.raises(SourceError, match=r"not JSON \(text/html"):
        extract_all(extractor)


def test_dropped_connection_once_is_retried(api: RunningApi) -> None:
    api.state.fault("drop", path="/pages", when={"page": "2"})
    assert extract_all(_pages(api)).column("id").to_pylist() == list(range(1, 251))


@pytest.mark.parametrize("concurrency", [1, 4])
def test_connection_dropped_in_the_middle_of_paging_fails(
    api: RunningApi, concurrency: int
) -> None:
    api.state.fault("drop", path="/pages", when={"page": "2"}, times=100)
    with pytest.raises(SourceError) as info:
        extract_all(_pages(api, concurrency=concurrency))
    message = str(info.value)
    assert "connection failed after 4 attempt(s)" in message
    assert "RemoteProtocolError" in message and "page=2" in message


def test_unreachable_server_fails_naming_the_url() -> None:
    extractor = create_http_extractor(
        "http://127.0.0.1:9/items?api_key=topsecret",
        retry=RetryPolicy(max_attempts=2, backoff=0.01),
    )
    with pytest.raises(SourceError) as info:
        extract_all(extractor)
    message = str(info.value)
    assert "connection failed" in message and "api_key=***" in message
    assert "topsecret" not in message


def test_unsupported_scheme_fails_at_once() -> None:
    extractor = create_http_extractor("ftp://127.0.0.1/items", retry=FAST)
    with pytest.raises(SourceError, match=r"cannot send the request.*use an http:// or https://"):
        extract_all(extractor)


def test_records_path_that_does_not_exist(api: RunningApi) -> None:
    extractor = create_http_extractor(
        api.url + "/pages", paginator=page_number(), records_path="data.rows"
    )
    with pytest.raises(
        SourceError, match=r"record path 'data.rows' does not exist.*keys there: items"
    ):
        extract_all(extractor)


def test_mixed_types_across_pages_name_the_page_and_field(api: RunningApi) -> None:
    api.state.records = [
        dict(r, price=f"{r['price']} EUR") if 100 <= i < 200 else r
        for i, r in enumerate(api.state.records)
    ]
    with pytest.raises(SourceError) as info:
        extract_all(_pages(api))
    message = str(info.value)
    assert "field 'price' changes type" in message and "page=2" in message
