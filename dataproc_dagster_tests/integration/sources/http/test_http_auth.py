"""Each auth kind against the test API, wrong secrets, and secrets kept out of messages."""

from __future__ import annotations

import pytest
from dagster import EnvVar

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.http.auth import HttpAuth, api_key, basic, bearer
from dataproc_dagster.sources.http.extractor import create_http_extractor
from dataproc_dagster.sources.http.pagination import page_number
from dataproc_dagster.sources.http.resource import HttpResource
from dataproc_dagster_tests.helpers.http_support import (  # noqa: F401
    api_fixture,
    extract_all,
    step_context,
)
from dataproc_dagster_tests.servers.http_api import RunningApi

SECRET = "s3cr3t-Value-42"
WRONG = "wrong-Value-99"

AUTH_CASES = [
    (("bearer", SECRET), bearer("API_SECRET")),
    (("basic", "etl", SECRET), basic("etl", "API_SECRET")),
    (("header", "X-API-Key", SECRET), api_key("X-API-Key", "API_SECRET")),
    (("query", "api_key", SECRET), api_key("api_key", "API_SECRET", location="query")),
]


AUTH_IDS = ["bearer", "basic", "api_key_header", "api_key_query"]


def _extractor(api: RunningApi, auth: HttpAuth) -> object:
    return create_http_extractor(
        api.url + "/pages",
        auth=auth,
        paginator=page_number(total_pages_path="meta.total_pages"),
        records_path="data.items",
        concurrency=2,
    )


@pytest.mark.parametrize(("server_auth", "auth"), AUTH_CASES, ids=AUTH_IDS)
def test_right_secret_reads_every_page(
    api: RunningApi, monkeypatch: pytest.MonkeyPatch, server_auth: tuple[str, ...], auth: HttpAuth
) -> None:
    api.state.auth = server_auth
    monkeypatch.setenv("API_SECRET", SECRET)
    table = extract_all(_extractor(api, auth))  # type: ignore[arg-type]
    assert table.num_rows == 250


@pytest.mark.parametrize(("server_auth", "auth"), AUTH_CASES, ids=AUTH_IDS)
def test_wrong_secret_fails_at_once_without_showing_it(
    api: RunningApi,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    server_auth: tuple[str, ...],
    auth: HttpAuth,
) -> None:
    api.state.auth = server_auth
    monkeypatch.setenv("API_SECRET", WRONG)
    with pytest.raises(SourceError) as info:
        extract_all(_extractor(api, auth))  # type: ignore[arg-type]
    message = str(info.value)
    assert "[pipeline orders_sync]" in message
    assert "HTTP 401 Unauthorized" in message and "invalid credentials" in message
    assert "$API_SECRET" in message  # the fix names the variable to check
    assert WRONG not in message and WRONG not in caplog.text
    assert len(api.state.log) == 1  # 401 is not retried
    if auth.location == "query" and auth.kind == "api_key":
        assert "api_key=***" in message


def test_unset_secret_variable_is_a_config_error(
    api: RunningApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("API_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"environment variable API_SECRET .* is not set"):
        extract_all(_extractor(api, bearer("API_SECRET")))  # type: ignore[arg-type]
    assert api.state.log == []


def test_resource_supplies_base_url_headers_and_secret(
    api: RunningApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESOURCE_TOKEN", SECRET)
    api.state.auth = ("bearer", SECRET)
    resource = HttpResource(
        base_url=api.url + "/",
        headers={"X-Client": "dataproc"},
        auth_kind="bearer",
        secret=EnvVar("RESOURCE_TOKEN"),
    )
    extractor = create_http_extractor(
        "pages",
        resource_key="http",
        paginator=page_number(total_pages_path="meta.total_pages"),
        records_path="data.items",
    )
    with step_context(resources={"http": resource}) as ctx:
        assert extract_all(extractor, ctx).num_rows == 250
    assert all(headers.get("X-Client") == "dataproc" for _, _, headers in api.state.log)


def test_resource_with_wrong_secret_keeps_it_out_of_the_message(
    api: RunningApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESOURCE_KEY", WRONG)
    api.state.auth = ("query", "token", SECRET)
    resource = HttpResource(
        base_url=api.url,
        auth_kind="api_key",
        api_key_name="token",
        api_key_location="query",
        secret=EnvVar("RESOURCE_KEY"),
    )
    extractor = create_http_extractor("/single", resource_key="http")
    with step_context(resources={"http": resource}) as ctx, pytest.raises(SourceError) as info:
        extract_all(extractor, ctx)
    assert "token=***" in str(info.value) and WRONG not in str(info.value)


def test_relative_url_without_resource_is_rejected() -> None:
    with pytest.raises(ConfigError, match="is relative but no http resource"):
        create_http_extractor("items")
