"""A small Metabase REST client on httpx: authentication, sessions, the retry loop, queries.

The connection, the retry policy and the redaction are the HTTP extractor's
(:func:`~dataproc_dagster.sources.http.client.http_client`,
:class:`~dataproc_dagster.sources.http.retry.HttpRetryPolicy`,
:mod:`dataproc_dagster.core.redaction`); which statuses are retried is in
:mod:`~dataproc_dagster.sources.metabase.retry`, how answers are read (failed queries, cut-off
bodies) in :mod:`~dataproc_dagster.sources.metabase.responses`. Broken connections and a body
cut off mid-stream are retried with jittered backoff honouring ``Retry-After``. Secrets (API
key, password, session id) are sent in headers only and never appear in a message.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from dataproc_dagster.core.config_checks import check_http_url, check_timeout
from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.core.redaction import mask_url, register_secret, scrub
from dataproc_dagster.sources.http.client import http_client
from dataproc_dagster.sources.http.retry import HttpRetryPolicy, parse_retry_after
from dataproc_dagster.sources.metabase.responses import (
    Retryable,
    check_status,
    error_text,
    is_failed_query,
    parse_export_response,
    parse_query_response,
)
from dataproc_dagster.sources.metabase.retry import NOT_THE_QUERY, metabase_retry_policy


class MetabaseClient:
    """A connection to one Metabase, authenticated by API key or by username + password.

    Use as a context manager (or call :meth:`close`): a session opened by login is closed
    with ``DELETE /api/session`` at the end.

    Args:
        base_url: Metabase address, e.g. ``https://metabase.example.com``.
        api_key: API key (sent as ``X-API-KEY``); takes precedence over username/password.
        username: Login for a session (``POST /api/session``).
        password: Password for the session login.
        timeout: Connect/read timeout in seconds (a whole export may take longer; reads are
            timed per network read, not per response).
        retry: When to retry (default :func:`metabase_retry_policy`: 5 retries, 0.5 s
            doubling, at most 60 s per wait).
        log: Called with one line per retry or re-login (no secrets in it).
        transport: An httpx transport (tests).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        username: str = "",
        password: str = "",
        timeout: float = 30.0,
        retry: HttpRetryPolicy | None = None,
        log: Callable[[str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base_url = (base_url or "").strip().rstrip("/")
        if not base_url or urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigError(
                f"Metabase base URL {mask_url(base_url)!r} is not an http(s):// URL",
                source="Metabase",
                fix="set METABASE_BASE_URL (or the resource's base_url) to e.g. "
                "https://metabase.example.com",
            )
        check_http_url(
            base_url,
            option="METABASE_BASE_URL (or the resource's base_url)",
            example="https://metabase.example.com",
            credentials_fix="remove user:password@ and set METABASE_USERNAME and "
            "METABASE_PASSWORD, or METABASE_API_KEY",
        )
        check_timeout(timeout, option="METABASE_TIMEOUT (or the resource's timeout)")
        if not api_key and not (username and password):
            raise ConfigError(
                "no Metabase credentials: neither an API key nor username + password is set",
                source=f"Metabase {mask_url(base_url)}",
                fix="set METABASE_API_KEY, or METABASE_USERNAME and METABASE_PASSWORD",
            )
        self.base_url = base_url
        self.source = f"Metabase {mask_url(base_url)}"
        # Defence in depth: log records are masked for these values too.
        register_secret(api_key)
        register_secret(password)
        self._api_key = api_key
        self._username = username
        self._password = password
        self._session_id: str | None = None
        self.retry = retry or metabase_retry_policy()
        self._log_line = log
        self.attempts = 0
        self.retries = 0
        self.bytes_received = 0
        self._http = http_client(
            mask=self.mask,
            timeout=timeout,
            base_url=base_url,
            transport=transport,
            headers={"Accept": "application/json", "Accept-Encoding": "gzip"},
            # A redirect would send the credentials' next request (a POST) to another place.
            follow_redirects=False,
        )

    def mask(self, url: str) -> str:
        """``url`` with secret query parameters and the client's secret values masked."""
        return scrub(mask_url(url), self._secrets())

    def _secrets(self) -> tuple[str, ...]:
        return (self._api_key, self._password, self._session_id or "")

    def _log(self, message: str) -> None:
        if self._log_line is not None:
            self._log_line(scrub(message, self._secrets()))

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """End the session (if one was opened) and close the connection pool."""
        try:
            if self._session_id is not None:
                # Logout is best effort: the session expires on its own.
                with contextlib.suppress(httpx.HTTPError):
                    self._http.delete(
                        "/api/session", headers={"X-Metabase-Session": self._session_id}
                    )
                self._session_id = None
        finally:
            self._http.close()

    def __enter__(self) -> MetabaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def auth_method(self) -> str:
        """``api-key`` or ``session``."""
        return "api-key" if self._api_key else "session"

    # -- authentication -----------------------------------------------------------------

    def login(self) -> None:
        """Open a session with username + password (``POST /api/session``).

        Raises:
            SourceError: When Metabase refuses the login; the message carries Metabase's
                reason (e.g. wrong password, too many attempts), never the password.
        """
        body = {"username": self._username, "password": self._password}
        response = self._send_with_retries("POST", "/api/session", json=body, auth=False)
        if response.status_code == 200:
            try:
                session_id = response.json()["id"]
            except (ValueError, KeyError, TypeError):
                raise SourceError(
                    "login answered 200 without a session id",
                    source=self.source + "/api/session",
                    fix="check that METABASE_BASE_URL points at Metabase itself, not a proxy page",
                ) from None
            self._session_id = str(session_id)
            register_secret(self._session_id)
            return
        reason = error_text(response)
        raise SourceError(
            f"login as {self._username!r} refused (HTTP {response.status_code}): {reason}",
            source=self.source + "/api/session",
            fix="check METABASE_USERNAME / METABASE_PASSWORD (or use METABASE_API_KEY); after "
            "10 failed logins Metabase makes you wait before the next try",
        )

    def _auth_headers(self) -> dict[str, str]:
        if self._api_key:
            return {"X-API-KEY": self._api_key}
        if self._session_id is None:
            self.login()
        assert self._session_id is not None
        return {"X-Metabase-Session": self._session_id}

    # -- requests -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        parse: Callable[[httpx.Response], Any] | None = None,
    ) -> Any:
        """Send an authenticated request and return the parsed answer.

        ``parse`` turns the response into the result; it may raise :class:`Retryable`
        (e.g. a body cut off) to have the request tried again. Without it the JSON body of a
        2xx answer is returned.

        Raises:
            SourceError: On 401 (after one re-login for sessions), 403, 404, other 4xx/5xx,
                or when retries are used up.
        """
        relogged = False
        while True:
            try:
                return self._send_with_retries(
                    method, path, params=params, json=json_body, data=form, parse=parse
                )
            except _Unauthenticated:
                if self._api_key:
                    raise SourceError(
                        "Metabase answered 401 Unauthenticated: the API key was refused",
                        source=self.source + path,
                        fix="check METABASE_API_KEY (keys start with mb_) and that it is not "
                        "disabled",
                    ) from None
                if relogged:
                    raise SourceError(
                        "Metabase answered 401 Unauthenticated again right after a fresh login",
                        source=self.source + path,
                        fix="check that the user may use the API, or use METABASE_API_KEY",
                    ) from None
                # A session expires (MAX_SESSION_AGE) with a bare 401: log in once more.
                self._log(f"Metabase session expired ({path}): logging in again")
                self._session_id = None
                relogged = True

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET`` a JSON document."""
        return self.request("GET", path, params=params)

    def _send_with_retries(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        parse: Callable[[httpx.Response], Any] | None = None,
        auth: bool = True,
    ) -> Any:
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            if attempt > 1:
                self.retries += 1
            self.attempts += 1
            headers = self._auth_headers() if auth else {}
            retry_after: float | None = None
            try:
                response = self._http.request(
                    method, path, params=params, json=json, data=data, headers=headers
                )
                self.bytes_received += len(response.content)
                status = response.status_code
                if status in self.retry.statuses and (
                    status in NOT_THE_QUERY or not is_failed_query(response)
                ):
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raise Retryable(f"HTTP {status} {error_text(response)[:120]}", retry_after)
                if not auth:
                    return response
                if response.status_code == 401:
                    raise _Unauthenticated()
                if parse is not None:
                    return parse(response)
                return self._default_parse(response, path)
            except Retryable as exc:
                reason, retry_after = exc.reason, exc.retry_after
            except httpx.TimeoutException as exc:
                reason = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                reason = f"connection failed ({type(exc).__name__}: {exc})"
            delay = self.retry.delay(attempt, retry_after)
            if not self.retry.may_retry(attempt, delay, waited):
                break
            self._log(
                f"Metabase {method} {path}: {reason}; retry {attempt}/"
                f"{self.retry.max_attempts - 1} in {delay:.1f}s"
            )
            time.sleep(delay)
            waited += delay
        raise SourceError(
            scrub(
                f"{method} {path} failed after {attempt} attempts"
                f"{self.retry.wait_budget_note(attempt, delay)}: {reason}",
                self._secrets(),
            ),
            source=self.source,
            fix="check that Metabase (and any proxy in front of it) is up and reachable; "
            "raise the resource's max_retries or timeout for a slow server",
        )

    def _default_parse(self, response: httpx.Response, path: str) -> Any:
        check_status(response, self.source, path)
        try:
            return response.json()
        except ValueError:
            if response.status_code in (200, 202):
                raise Retryable("the response body was cut off or is not JSON") from None
            raise

    # -- queries ------------------------------------------------------------------------

    def run_query(self, query: Mapping[str, Any], *, database_label: str = "") -> dict[str, Any]:
        """Run a query through ``POST /api/dataset`` and return the completed body.

        Raises:
            MetabaseQueryError: When Metabase reports the query failed (HTTP 202 with
                ``"status": "failed"`` in older releases, 400/500 with the same body now).
            SourceError: When the body is cut off or unparsable after every retry.
        """
        label = database_label or f"database {query.get('database')}"

        def parse(response: httpx.Response) -> dict[str, Any]:
            return parse_query_response(response, self.source, label, query)

        result: dict[str, Any] = self.request("POST", "/api/dataset", json_body=query, parse=parse)
        return result

    def export(
        self, query: Mapping[str, Any], *, fmt: str = "json", database_label: str = ""
    ) -> Any:
        """Run a query through the export endpoint ``POST /api/dataset/:fmt`` (no 2000 cap).

        The query is sent as the form field ``query`` (accepted by every release). Returns the
        decoded JSON array (``fmt="json"``) or the CSV text.

        Raises:
            MetabaseQueryError: When the export answers a failed-query body.
        """
        label = database_label or f"database {query.get('database')}"
        form = {"query": json.dumps(query, separators=(",", ":"))}

        def parse(response: httpx.Response) -> Any:
            return parse_export_response(response, self.source, label, query, fmt)

        return self.request("POST", f"/api/dataset/{fmt}", form=form, parse=parse)


class _Unauthenticated(Exception):
    """Internal: a 401 on a protected route."""
