"""Send one GET with retries and decode its JSON, sync (httpx.Client) or async (httpx.AsyncClient).

A GET is idempotent, so transient failures are sent again (see :class:`HttpRetryPolicy`): the
retried statuses (408, 425, 429 and every 5xx by default), connection-level faults and
timeouts, and a successful answer whose body is not JSON (a body cut off, or a proxy's page).
Every failure becomes a :class:`~dataproc_dagster.core.errors.SourceError` naming the pipeline, the
URL with secrets masked, the status and the start of the body; secrets never reach a message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from dataproc_dagster.core.errors import SourceError
from dataproc_dagster.core.redaction import mask_url, scrub
from dataproc_dagster.observability.logging import async_http_debug_hooks, http_debug_hooks
from dataproc_dagster.sources.http.auth import NO_AUTH, AuthKind, HttpAuth
from dataproc_dagster.sources.http.retry import HttpRetryPolicy, parse_retry_after

BODY_PREVIEW = 200


@dataclass
class Page:
    """One decoded response.

    Attributes:
        url: The URL that answered (secrets masked), for messages.
        raw_url: The URL that answered, unmasked; used only to build the next request.
        status: HTTP status.
        payload: The decoded JSON body.
        next_link: The ``rel="next"`` target of a ``Link`` header, when present.
    """

    url: str
    raw_url: str
    status: int
    payload: Any
    next_link: str | None = None


@dataclass
class HttpSource:
    """Everything needed to send requests to one API: headers, auth, timeout, retries.

    Args:
        pipeline: Pipeline name for messages.
        headers: Headers sent with every request (values of secret-looking names are scrubbed
            from messages).
        auth: How requests authenticate.
        secret: The resolved secret for ``auth`` (never shown).
        timeout: Seconds for connect and read.
        retry: When to retry.
        log: Called with a message for each retry (e.g. ``context.log.warning``).
    """

    pipeline: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: HttpAuth = NO_AUTH
    secret: str = ""
    timeout: float = 30.0
    retry: HttpRetryPolicy = field(default_factory=HttpRetryPolicy)
    log: Callable[[str], None] | None = None
    extra_secrets: tuple[str, ...] = ()

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown."""
        return tuple(s for s in (self.secret, *self.extra_secrets) if s)

    def mask(self, url: str) -> str:
        """``url`` with secret query parameters and secret values masked."""
        return scrub(mask_url(url, self.auth.secret_params()), self.secrets)

    def build(self, url: str, params: Mapping[str, Any] | None) -> httpx.Request:
        """The request for ``url`` + ``params``, with auth applied."""
        headers = {"Accept": "application/json", **self.headers}
        query: dict[str, str] = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        self.auth.apply(self.secret, headers, query)
        target = httpx.URL(url)
        if query:
            target = target.copy_merge_params(query)
        return httpx.Request("GET", target, headers=headers)

    def client(self, *, connections: int = 1) -> httpx.Client:
        """A sync client for these settings (close it, or use ``with``)."""
        return http_client(mask=self.mask, timeout=self.timeout, connections=connections)

    def async_client(self, *, connections: int) -> httpx.AsyncClient:
        """An async client allowing ``connections`` parallel connections."""
        return httpx.AsyncClient(
            event_hooks=async_http_debug_hooks(self.mask),
            timeout=self.timeout,
            follow_redirects=True,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    def get(self, client: httpx.Client, url: str, params: Mapping[str, Any] | None = None) -> Page:
        """GET ``url`` with retries and return the decoded page.

        Raises:
            SourceError: On a non-retryable status, exhausted retries or an unusable body.
        """
        request = self.build(url, params)
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            try:
                response = client.send(request)
                response.read()
            except httpx.TransportError as exc:
                wait = self._after_error(request, exc, attempt, waited)
            else:
                outcome = self._settle(request, response, attempt, waited)
                if isinstance(outcome, Page):
                    return outcome
                wait = outcome
            time.sleep(wait)
            waited += wait

    async def aget(
        self, client: httpx.AsyncClient, url: str, params: Mapping[str, Any] | None = None
    ) -> Page:
        """Async :meth:`get`."""
        request = self.build(url, params)
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            try:
                response = await client.send(request)
                await response.aread()
            except httpx.TransportError as exc:
                wait = self._after_error(request, exc, attempt, waited)
            else:
                outcome = self._settle(request, response, attempt, waited)
                if isinstance(outcome, Page):
                    return outcome
                wait = outcome
            await asyncio.sleep(wait)
            waited += wait

    # The decisions below are shared by the sync and async paths: return the wait before the
    # next attempt, the decoded page of a usable response, or raise.

    def _settle(
        self, request: httpx.Request, response: httpx.Response, attempt: int, waited: float
    ) -> Page | float:
        delay = self._after_response(request, response, attempt, waited)
        if delay is not None:
            return delay
        return self._decode(request, response, attempt, waited)

    def _may_retry(self, attempt: int, delay: float, waited: float) -> bool:
        return self.retry.may_retry(attempt, delay, waited)

    def _gave_up(self, attempt: int, delay: float) -> str:
        return f"after {attempt} attempt(s){self.retry.wait_budget_note(attempt, delay)}"

    def _after_error(
        self, request: httpx.Request, exc: httpx.TransportError, attempt: int, waited: float
    ) -> float:
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
        detail = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), self.secrets)
        url = self.mask(str(request.url))
        if isinstance(exc, httpx.UnsupportedProtocol):
            raise SourceError(
                f"cannot send the request: {detail}",
                pipeline=self.pipeline,
                source=f"GET {url}",
                fix="use an http:// or https:// URL",
            ) from None
        delay = self.retry.delay(attempt)
        if not self._may_retry(attempt, delay, waited):
            fix = (
                f"raise the timeout (now {self.timeout:g}s) or check that the server is up"
                if what == "timed out"
                else "check that the server is reachable and the URL is right"
            )
            raise SourceError(
                f"request {what} after {attempt} attempt(s) over {waited:.1f}s of waiting: "
                f"{detail}",
                pipeline=self.pipeline,
                source=f"GET {url}",
                fix=fix,
            ) from None
        self._log(f"GET {url} {what} ({detail}); attempt {attempt}, retrying in {delay:.2f}s")
        return delay

    def _after_response(
        self, request: httpx.Request, response: httpx.Response, attempt: int, waited: float
    ) -> float | None:
        status = response.status_code
        if status < 400:
            return None
        url = self.mask(str(request.url))
        if status in self.retry.statuses:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            delay = self.retry.delay(attempt, retry_after)
            if self._may_retry(attempt, delay, waited):
                hint = f" (Retry-After {retry_after:g}s)" if retry_after is not None else ""
                self._log(
                    f"GET {url} answered HTTP {status}{hint}; attempt {attempt}, "
                    f"retrying in {delay:.2f}s"
                )
                return delay
            what = (
                "the server kept failing: check its status or logs"
                if status >= 500
                else "the server is overloaded or rate-limiting"
            )
            raise SourceError(
                f"HTTP {status} {response.reason_phrase} {self._gave_up(attempt, delay)}: "
                f"{self._preview(response)}",
                pipeline=self.pipeline,
                source=f"GET {url}",
                fix=f"{what}; retry later, or raise max_attempts / max_total_wait",
            )
        raise SourceError(
            f"HTTP {status} {response.reason_phrase}: {self._preview(response)}",
            pipeline=self.pipeline,
            source=f"GET {url}",
            fix=_fix_for_status(status, self.auth),
        )

    def _decode(
        self, request: httpx.Request, response: httpx.Response, attempt: int, waited: float
    ) -> Page | float:
        raw_url = str(response.url)
        url = self.mask(raw_url)
        if not response.content.strip():
            payload: Any = None
        else:
            try:
                payload = json.loads(response.content)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                # A body cut off on the way or a proxy's page instead of the API's answer:
                # the next attempt usually gets the real one.
                kind = response.headers.get("Content-Type", "no Content-Type")
                what = f"a body that is not JSON ({kind}; {exc})"
                delay = self.retry.delay(attempt)
                if self._may_retry(attempt, delay, waited):
                    self._log(
                        f"GET {url} answered HTTP {response.status_code} with {what}; "
                        f"attempt {attempt}, retrying in {delay:.2f}s"
                    )
                    return delay
                raise SourceError(
                    f"HTTP {response.status_code} answered {what} "
                    f"{self._gave_up(attempt, delay)}: {self._preview(response)}",
                    pipeline=self.pipeline,
                    source=f"GET {url}",
                    fix="check the URL points at the JSON API (not a web page) and that the "
                    "server is healthy",
                ) from None
        next_link = (
            response.links.get("next", {}).get("url") if "link" in response.headers else None
        )
        return Page(
            url=url,
            raw_url=raw_url,
            status=response.status_code,
            payload=payload,
            next_link=next_link,
        )

    def _preview(self, response: httpx.Response) -> str:
        text = response.content[: BODY_PREVIEW * 4].decode("utf-8", errors="replace")
        text = " ".join(text.split())[:BODY_PREVIEW]
        return repr(scrub(text, self.secrets)) if text else "(empty body)"

    def _log(self, message: str) -> None:
        if self.log is not None:
            self.log(scrub(message, self.secrets))


def http_client(
    *,
    mask: Callable[[str], str],
    timeout: float,
    connections: int = 1,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    follow_redirects: bool = True,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """The framework's sync httpx client: DEBUG request lines with masked URLs, one pool size.

    Both the HTTP extractor and the Metabase client build their connections here, so that
    timeouts, pooling and the request log lines work the same way for every source.

    Args:
        mask: Turns a URL into the form shown in logs (secrets masked).
        timeout: Seconds for connect and for each network read.
        connections: Pool size (connections kept alive and at most open).
        base_url: Prefix of relative request URLs.
        headers: Headers sent with every request.
        follow_redirects: Follow 3xx answers.
        transport: An httpx transport (tests).
    """
    return httpx.Client(
        event_hooks=http_debug_hooks(mask),
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        follow_redirects=follow_redirects,
        transport=transport,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fix_for_status(status: int, auth: HttpAuth) -> str:
    if status in (401, 403):
        if auth.kind == AuthKind.NONE:
            return "the API needs credentials: configure auth (bearer, basic or api_key)"
        return f"check the credential ({auth.describe()}) and its permissions"
    if status == 404:
        return "check the URL and the path parameters"
    if status in (400, 422):
        return "check the query parameters (paginator, incremental parameter, extra params)"
    if status >= 500:
        return "the server failed; check its logs or retry later"
    return "check the request settings for this endpoint"


def all_secrets(*groups: Iterable[str]) -> tuple[str, ...]:
    """Join groups of secret values, dropping empty ones."""
    return tuple(s for group in groups for s in group if s)
