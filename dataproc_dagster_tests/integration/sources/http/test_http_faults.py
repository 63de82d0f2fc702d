"""Retries and failures: 429 with Retry-After, 5xx, timeouts, bad bodies, dropped connections."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.http.extractor import HttpExtractor, create_http_extractor
from dataproc_dagster.sources.http.pagination import page_number, single
from dataproc_dagster.sources.http.resource import HttpResource
from dataproc_dagster.sources.http.retry import RetryPolicy
from dataproc_dagster_tests.helpers.http_support import (  # noqa: F401
    api_fixture,
    extract_all,
    step_context,
)
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


@pytest.mark.parametrize("concurrency", [1, 4])
def test_500_text_html_once_then_200_is_retried(api: RunningApi, concurrency: int) -> None:
    # A proxy in front of the API answers its own 500 HTML page once, then the API answers.
    api.state.fault("html", path="/pages", when={"page": "2"})
    table = extract_all(_pages(api, concurrency=concurrency))
    assert table.column("id").to_pylist() == list(range(1, 251))
    assert [p["page"] for p in api.state.requests_to("/pages")].count("2") == 2


@pytest.mark.parametrize("status", ["500", "501", "520", "408", "425"])
def test_every_5xx_and_408_425_are_retried_by_default(api: RunningApi, status: str) -> None:
    api.state.fault(status, path="/pages", when={"page": "3"})
    assert extract_all(_pages(api)).column("id").to_pylist() == list(range(1, 251))
    assert [p["page"] for p in api.state.requests_to("/pages")] == ["1", "2", "3", "3"]


@pytest.mark.parametrize("kind", ["malformed", "cut"])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_cut_json_body_once_then_fine_is_retried(
    api: RunningApi, kind: str, concurrency: int
) -> None:
    # "malformed": a complete 200 response whose JSON stops half way (a proxy cut it);
    # "cut": the connection closes before Content-Length bytes arrived.
    api.state.fault(kind, path="/pages", when={"page": "2"})
    table = extract_all(_pages(api, concurrency=concurrency))
    assert table.column("id").to_pylist() == list(range(1, 251))
    assert [p["page"] for p in api.state.requests_to("/pages")].count("2") == 2


def test_a_body_that_is_never_json_fails_after_max_attempts(api: RunningApi) -> None:
    api.state.fault("malformed", path="/pages", when={"page": "2"}, times=100)
    with pytest.raises(SourceError) as info:
        extract_all(_pages(api))
    message = str(info.value)
    assert "is not JSON" in message and "after 4 attempt(s)" in message
    assert f"[GET {api.url}/pages?page=2&per_page=100]" in message
    assert '{"data": {"items": [{"id": 1,' in message
    assert [p["page"] for p in api.state.requests_to("/pages")].count("2") == 4


def test_html_error_page_every_time_fails_after_max_attempts_with_the_body_start(
    api: RunningApi,
) -> None:
    api.state.fault("html", path="/pages", when={"page": "1"}, times=100)
    with pytest.raises(SourceError) as info:
        extract_all(_pages(api))
    message = str(info.value)
    assert "HTTP 500 Internal Server Error after 4 attempt(s)" in message
    assert "<title>502 Bad Gateway</title>" in message
    assert f"[GET {api.url}/pages?page=1&per_page=100]" in message
    assert len(api.state.log) == 4


@pytest.mark.parametrize("status", ["400", "401", "403", "404", "410", "422"])
def test_other_4xx_are_never_retried(api: RunningApi, status: str) -> None:
    api.state.fault(status, path="/pages", when={"page": "2"}, times=100)
    with pytest.raises(SourceError, match=rf"HTTP {status} "):
        extract_all(_pages(api))
    assert [p["page"] for p in api.state.requests_to("/pages")] == ["1", "2"]


def test_retried_statuses_are_configurable(api: RunningApi) -> None:
    only_503 = RetryPolicy(
        max_attempts=4, backoff=0.01, max_total_wait=5, statuses=frozenset({503})
    )
    api.state.fault("500", path="/pages", when={"page": "2"})
    with pytest.raises(SourceError, match=r"HTTP 500 Internal Server Error: .*injected 500"):
        extract_all(_pages(api, retry=only_503))
    api.state.log.clear()
    api.state.fault("503", path="/pages", when={"page": "2"})
    assert extract_all(_pages(api, retry=only_503)).num_rows == 250
    assert [p["page"] for p in api.state.requests_to("/pages")].count("2") == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422, 200, 302, 600])
def test_statuses_that_must_not_be_retried_are_refused(status: int) -> None:
    with pytest.raises(ConfigError) as info:
        RetryPolicy(statuses=frozenset({503, status}))
    assert str(status) in str(info.value) and "408, 425, 429" in str(info.value)


def test_html_page_with_status_200_is_not_json(api: RunningApi) -> None:
    api.state.fault("html200", path="/single", times=100)
    extractor = create_http_extractor(api.url + "/single", paginator=single(), retry=FAST)
    with pytest.raises(SourceError, match=r"not JSON \(text/html.*after 4 attempt\(s\)"):
        extract_all(extractor)
    assert len(api.state.requests_to("/single")) == 4


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


def test_unsupported_scheme_fails_when_the_extractor_is_defined() -> None:
    with pytest.raises(ConfigError, match=r"must start with http:// or https://.*Fix: set"):
        create_http_extractor("ftp://127.0.0.1/items", retry=FAST)


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


def test_the_http_resource_takes_retried_statuses(api: RunningApi) -> None:
    resource = HttpResource(base_url=api.url, backoff=0.01, retry_statuses=[503])
    extractor = create_http_extractor(
        "/pages", resource_key="http", paginator=page_number(), records_path="data.items"
    )
    api.state.fault("500", path="/pages", when={"page": "2"})
    with step_context(resources={"http": resource}) as ctx, pytest.raises(SourceError):
        extract_all(extractor, ctx)
    assert [p["page"] for p in api.state.requests_to("/pages")] == ["1", "2"]
    with pytest.raises(ConfigError, match="http resource retry_statuses"):
        HttpResource(retry_statuses=[503, 404]).retry_policy()
