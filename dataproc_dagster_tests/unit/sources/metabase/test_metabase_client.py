"""The Metabase client against the stand-in server: auth, retries, failures, the cap."""
# ruff: noqa: F401, F811 - the stand-in fixtures are imported by name, then requested by name

from __future__ import annotations

import time

import pytest

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.http import retry as retry_module
from dataproc_dagster.sources.http.retry import RETRY_STATUSES, HttpRetryPolicy
from dataproc_dagster.sources.metabase.client import MetabaseClient
from dataproc_dagster.sources.metabase.native_reader import native_query
from dataproc_dagster.sources.metabase.resource import MetabaseResource
from dataproc_dagster.sources.metabase.responses import MetabaseQueryError
from dataproc_dagster.sources.metabase.retry import metabase_retry_policy
from dataproc_dagster_tests.servers.metabase_fixtures import (
    StandinSetup,
    metabase,
    old_metabase,
)


def test_api_key_is_sent_as_x_api_key(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        assert client.get_json("/api/user/current")["email"] == metabase.server.username
    assert client.auth_method == "api-key"


def test_wrong_api_key_fails_with_the_plain_text_401_and_no_secret(
    metabase: StandinSetup,
) -> None:
    secret = "mb_wrong_key_that_must_not_leak"
    with (
        metabase.client(api_key=secret) as client,
        pytest.raises(SourceError) as caught,
    ):
        client.get_json("/api/database")
    text = str(caught.value)
    assert "401 Unauthenticated" in text and "METABASE_API_KEY" in text
    assert secret not in text and metabase.url in text


def test_raw_401_body_is_plain_text_unauthenticated(metabase: StandinSetup) -> None:
    import httpx

    response = httpx.get(f"{metabase.url}/api/database", headers={"X-API-KEY": "mb_nope"})
    assert response.status_code == 401
    assert response.text == "Unauthenticated"
    assert response.headers["content-type"].startswith("text/plain")


def test_session_login_uses_the_session_header_and_logs_out(metabase: StandinSetup) -> None:
    server = metabase.server
    with MetabaseClient(metabase.url, username=server.username, password=server.password) as c:
        assert c.auth_method == "session"
        assert len(c.get_json("/api/database")["data"]) == 2
        assert len(server.sessions) == 1
    assert server.count("POST", "/api/session") == 1
    assert server.count("DELETE", "/api/session") == 1
    assert server.sessions == set()


def test_wrong_password_reports_metabase_reason_without_the_password(
    metabase: StandinSetup,
) -> None:
    password = "hunter2-not-it"
    client = MetabaseClient(metabase.url, username=metabase.server.username, password=password)
    with client, pytest.raises(SourceError) as caught:
        client.get_json("/api/database")
    text = str(caught.value)
    assert "did not match stored password" in text and "HTTP 401" in text
    assert password not in text


def test_expired_session_logs_in_again_once(metabase: StandinSetup) -> None:
    server = metabase.server
    messages: list[str] = []
    with MetabaseClient(
        metabase.url, username=server.username, password=server.password, log=messages.append
    ) as client:
        client.get_json("/api/user/current")
        server.expire_sessions()
        assert client.get_json("/api/user/current")["email"] == server.username
    assert server.count("POST", "/api/session") == 2
    assert any("logging in again" in m for m in messages)


def test_401_right_after_a_fresh_login_fails_instead_of_looping(metabase: StandinSetup) -> None:
    server = metabase.server
    server.add_fault("/api/user/current", method="GET", status=401, body="Unauthenticated", times=5)
    with (
        MetabaseClient(metabase.url, username=server.username, password=server.password) as c,
        pytest.raises(SourceError, match="again right after a fresh login"),
    ):
        c.get_json("/api/user/current")
    assert server.count("POST", "/api/session") == 2


def test_missing_credentials_and_bad_url_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="METABASE_API_KEY"):
        MetabaseClient("http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="METABASE_BASE_URL"):
        MetabaseClient("metabase.local", api_key="mb_x")


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(metabase: StandinSetup, status: int) -> None:
    metabase.server.add_fault("/api/database", method="GET", status=status, retry_after="1")
    messages: list[str] = []
    started = time.perf_counter()
    with metabase.client(log=messages.append) as client:
        assert client.get_json("/api/database")["total"] == 2
    assert time.perf_counter() - started >= 0.95
    assert metabase.server.count("GET", "/api/database") == 2
    assert f"HTTP {status}" in messages[0] and "in 1.0s" in messages[0]


def test_502_and_504_without_retry_after_back_off_and_recover(metabase: StandinSetup) -> None:
    metabase.server.add_fault("/api/database", method="GET", status=502, body="Bad Gateway")
    metabase.server.add_fault("/api/database", method="GET", status=504, body="Gateway Timeout")
    with metabase.client() as client:
        assert client.get_json("/api/database")["total"] == 2
        assert client.retries == 2


def test_retries_run_out_with_a_clear_error(metabase: StandinSetup) -> None:
    metabase.server.add_fault("/api/database", method="GET", status=503, times=10)
    with metabase.client(max_retries=2) as client, pytest.raises(SourceError) as caught:
        client.get_json("/api/database")
    assert "failed after 3 attempts: HTTP 503" in str(caught.value)
    assert metabase.server.count("GET", "/api/database") == 3


def test_connection_reset_is_retried(metabase: StandinSetup) -> None:
    metabase.server.add_fault("/api/database", method="GET", kind="reset")
    with metabase.client() as client:
        assert client.get_json("/api/database")["total"] == 2
        assert client.retries == 1


def test_body_cut_mid_stream_is_retried_never_a_short_result(metabase: StandinSetup) -> None:
    metabase.server.add_fault("/api/dataset", kind="cut")
    query = native_query(metabase.sales_id, "SELECT id FROM PUBLIC.ORDERS ORDER BY id")
    with metabase.client() as client:
        body = client.run_query(query)
        assert client.retries == 1
    assert len(body["data"]["rows"]) == 2000
    assert metabase.server.count("POST", "/api/dataset") == 2


def test_body_cut_every_time_is_an_error(metabase: StandinSetup) -> None:
    metabase.server.add_fault("/api/dataset", kind="cut", times=10)
    query = native_query(metabase.sales_id, "SELECT id FROM PUBLIC.ORDERS")
    with metabase.client(max_retries=1) as client, pytest.raises(SourceError) as caught:
        client.run_query(query)
    text = str(caught.value)
    assert "failed after 2 attempts" in text
    assert "cut off" in text or "connection failed" in text


def test_old_style_error_appended_to_a_half_streamed_body_is_an_error(
    old_metabase: StandinSetup,
) -> None:
    old_metabase.server.add_fault("/api/dataset", kind="append_error", times=10)
    query = native_query(old_metabase.sales_id, "SELECT id FROM PUBLIC.ORDERS")
    with old_metabase.client(max_retries=1) as client, pytest.raises(SourceError, match="cut off"):
        client.run_query(query)


@pytest.mark.parametrize("style", ["old", "new"])
def test_failed_query_names_database_query_and_metabase_error(
    metabase: StandinSetup, old_metabase: StandinSetup, style: str
) -> None:
    setup = old_metabase if style == "old" else metabase
    sql = "SELECT no_such_column FROM PUBLIC.ORDERS WHERE " + " AND ".join(["1 = 1"] * 60)
    with setup.client() as client, pytest.raises(MetabaseQueryError) as caught:
        client.run_query(native_query(setup.sales_id, sql), database_label="database 1 (Sales)")
    error = caught.value
    text = str(error)
    assert "no such column: no_such_column" in error.error
    assert "database 1 (Sales)" in text and "no such column" in text
    assert f"HTTP {202 if style == 'old' else 400}" in text
    assert "SELECT no_such_column FROM PUBLIC.ORDERS" in text
    assert "1 = 1 AND " * 30 not in text  # the query is cut to 200 characters
    assert error.error_type == "invalid-query"
    # A failed query is not retried.
    assert setup.server.count("POST", "/api/dataset") == 1


def test_unknown_table_in_mbql_is_a_failed_query_body(metabase: StandinSetup) -> None:
    query = {"database": metabase.sales_id, "type": "query", "query": {"source-table": 999}}
    with metabase.client() as client, pytest.raises(MetabaseQueryError, match="Table 999"):
        client.run_query(query)


def test_404_bodies_are_plain_text(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        with pytest.raises(
            SourceError, match=r"HTTP 404 on /api/table/999/query_metadata: Not found\."
        ):
            client.get_json("/api/table/999/query_metadata")
        with pytest.raises(SourceError, match="API endpoint does not exist"):
            client.get_json("/api/table/abc")


def test_the_2000_row_cap_and_its_flag(metabase: StandinSetup) -> None:
    sales = metabase.sales_id
    with metabase.client() as client:
        native = client.run_query(native_query(sales, "SELECT id FROM PUBLIC.ORDERS LIMIT 3000"))
        assert len(native["data"]["rows"]) == 2000
        assert native["data"]["rows_truncated"] == 2000
        exact = client.run_query(native_query(sales, "SELECT id FROM PUBLIC.ORDERS LIMIT 2000"))
        assert exact["data"]["rows_truncated"] == 2000  # flagged although nothing was cut
        small = client.run_query(native_query(sales, "SELECT id FROM PUBLIC.ORDERS LIMIT 1999"))
        assert "rows_truncated" not in small["data"]
        paged = client.run_query(
            {
                "database": sales,
                "type": "query",
                "query": {"source-table": metabase.orders_id, "page": {"page": 1, "items": 5000}},
            }
        )
        assert len(paged["data"]["rows"]) == 2000
        assert "rows_truncated" not in paged["data"]  # page hides the cap
        raised = client.run_query(
            {
                **native_query(sales, "SELECT id FROM PUBLIC.ORDERS"),
                "constraints": {"max-results": 1_048_575, "max-results-bare-rows": 1_048_575},
            }
        )
        assert len(raised["data"]["rows"]) == 5000 and "rows_truncated" not in raised["data"]


def test_integers_beyond_2_pow_53_arrive_as_strings_unless_asked_otherwise(
    metabase: StandinSetup, old_metabase: StandinSetup
) -> None:
    query = {
        "database": metabase.sales_id,
        "type": "query",
        "query": {"source-table": metabase.orders_id, "limit": 1},
    }
    with metabase.client() as client:
        row = client.run_query(query)["data"]["rows"][0]
        assert row[0] == 1 and row[3] == "9007199254740992"
        plain = client.run_query({**query, "middleware": {"js-int-to-string?": False}})
        assert plain["data"]["rows"][0][3] == 9007199254740992
    with old_metabase.client() as client:
        old_row = client.run_query(query)["data"]["rows"][0]
        assert old_row[0] == "1"  # v0.47: every PK/FK of an MBQL query


@pytest.mark.parametrize("style", ["old", "new"])
def test_export_has_no_cap_and_reports_failures(
    metabase: StandinSetup, old_metabase: StandinSetup, style: str
) -> None:
    setup = old_metabase if style == "old" else metabase
    with setup.client() as client:
        rows = client.export(native_query(setup.sales_id, "SELECT id FROM PUBLIC.ORDERS"))
        assert len(rows) == 5000 and rows[0] == {"id": 1}
        with pytest.raises(MetabaseQueryError, match="no such table"):
            client.export(native_query(setup.sales_id, "SELECT 1 FROM nowhere"))


def test_retry_after_as_an_http_date(metabase: StandinSetup) -> None:
    from email.utils import formatdate

    when = formatdate(time.time() + 2, usegmt=True)  # whole seconds: waits 1-2 s
    metabase.server.add_fault("/api/database", method="GET", status=503, retry_after=when)
    started = time.perf_counter()
    with metabase.client() as client:
        assert client.get_json("/api/database")["total"] == 2
    assert 0.9 <= time.perf_counter() - started < 5


def test_retry_after_is_capped_by_max_retry_wait(metabase: StandinSetup) -> None:
    metabase.server.add_fault("/api/database", method="GET", status=429, retry_after="3600")
    started = time.perf_counter()
    with metabase.client(max_retry_wait=0.2) as client:
        assert client.get_json("/api/database")["total"] == 2
    assert time.perf_counter() - started < 3


PROXY_500 = "<html><head><title>500 Internal Server Error</title></head><body>nginx</body></html>"


@pytest.mark.parametrize("path", ["/api/dataset", "/api/dataset/json"])
def test_a_5xx_html_page_once_then_the_answer_is_retried(metabase: StandinSetup, path: str) -> None:
    # A proxy in front of Metabase answers its own 500 page once; the next try gets through.
    metabase.server.add_fault(path, status=500, body=PROXY_500, content_type="text/html")
    query = native_query(metabase.sales_id, "SELECT id FROM PUBLIC.ORDERS WHERE id <= 3")
    with metabase.client() as client:
        if path == "/api/dataset":
            rows = client.run_query(query)["data"]["rows"]
        else:
            rows = [[r["id"]] for r in client.export(query)]
        assert client.retries == 1
    assert rows == [[1], [2], [3]]
    assert metabase.server.count("POST", path) == 2


def test_a_5xx_every_time_names_metabase_in_brackets(metabase: StandinSetup) -> None:
    metabase.server.add_fault("/api/dataset", status=500, body=PROXY_500, times=10)
    query = native_query(metabase.sales_id, "SELECT id FROM PUBLIC.ORDERS")
    with metabase.client(max_retries=2) as client, pytest.raises(SourceError) as caught:
        client.run_query(query)
    text = str(caught.value)
    assert f"[Metabase {metabase.url}] POST /api/dataset failed after 3 attempts: HTTP 500" in text
    assert "500 Internal Server Error" in text


def test_a_failed_query_with_status_500_is_not_retried(metabase: StandinSetup) -> None:
    # Current Metabase answers 500 with a failed-query body for errors that are not the
    # query's; the body decides (reference section 8): it would fail the same way again.
    failed = '{"status": "failed", "error": "Unexpected", "error_type": "qp"}'
    metabase.server.add_fault("/api/dataset", status=500, body=failed, times=10)
    query = native_query(metabase.sales_id, "SELECT id FROM PUBLIC.ORDERS")
    with metabase.client() as client, pytest.raises(MetabaseQueryError, match="Unexpected"):
        client.run_query(query)
    assert metabase.server.count("POST", "/api/dataset") == 1


def test_the_metabase_options_map_onto_the_shared_retry_policy() -> None:
    policy = metabase_retry_policy(max_retries=3, backoff=0.25, max_retry_wait=2.0)
    assert isinstance(policy, HttpRetryPolicy)
    assert policy.max_attempts == 4 and policy.backoff == 0.25 and policy.jitter
    assert policy.statuses == RETRY_STATUSES  # the HTTP extractor's: 408, 425, 429, 5xx
    assert policy.delay(1, retry_after=3600) == 2.0  # max_retry_wait caps Retry-After too
    assert metabase_retry_policy(max_retries=-1).max_attempts == 1
    resource = MetabaseResource(base_url="http://127.0.0.1:9", api_key="mb_key", max_retries=2)
    with resource.get_client() as client:
        assert client.retry == metabase_retry_policy(2, 0.5, 60.0)


def test_retry_waits_are_jittered_within_the_shared_bounds(
    metabase: StandinSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 0.2 s doubling, jittered into [50 %, 100 %]: the lowest draw gives 0.1, 0.2, 0.4 s.
    factors: list[tuple[float, float]] = []

    def lowest(low: float, high: float) -> float:
        factors.append((low, high))
        return low

    monkeypatch.setattr(retry_module.random, "uniform", lowest)
    metabase.server.add_fault("/api/database", method="GET", status=503, times=3)
    messages: list[str] = []
    started = time.perf_counter()
    with metabase.client(backoff=0.2, max_retries=3, log=messages.append) as client:
        assert client.get_json("/api/database")["total"] == 2
    elapsed = time.perf_counter() - started
    assert factors == [(0.5, 1.0)] * 3
    assert [m.rsplit(" in ", 1)[1] for m in messages] == ["0.1s", "0.2s", "0.4s"]
    assert "retry 1/3" in messages[0] and "HTTP 503" in messages[0]
    assert 0.7 <= elapsed < 0.7 + 2.0  # not the unjittered 1.4 s


def test_408_is_retried_as_by_the_http_extractor(metabase: StandinSetup) -> None:
    metabase.server.add_fault("/api/database", method="GET", status=408, body="Request Timeout")
    with metabase.client() as client:
        assert client.get_json("/api/database")["total"] == 2
        assert client.retries == 1


def test_the_client_masks_urls_with_the_shared_redaction(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        masked = client.mask(f"{metabase.url}/api/x?api_key=abc123&q={metabase.server.api_key}")
    assert masked == f"{metabase.url}/api/x?api_key=***&q=***"
