"""Reading Metabase's answers: failed queries, cut-off bodies, error statuses.

Everything here follows ``metabase-api.md`` (the project's reference): success of a query is
decided on ``body["status"]``, never on the HTTP status alone; 401/404 bodies are plain text.
A body cut off mid-stream raises :class:`Retryable` (the client tries again), never read as a
short result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from dataproc_dagster.core.errors import SourceError

QUERY_PREVIEW_CHARS = 200


class MetabaseQueryError(SourceError):
    """Metabase accepted a query and reported it failed (HTTP 202 or 4xx/5xx, same body)."""

    def __init__(
        self,
        message: str,
        *,
        error: str,
        error_type: str | None,
        source: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.error = error
        self.error_type = error_type
        super().__init__(message, source=source, fix=fix)


class Retryable(Exception):
    """Internal: the attempt failed in a way worth another try."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def preview_query(query: Mapping[str, Any]) -> str:
    """The first 200 characters of a query: the SQL of a native query, else the MBQL as JSON."""
    native = query.get("native")
    if isinstance(native, Mapping) and isinstance(native.get("query"), str):
        text = str(native["query"])
    else:
        text = json.dumps(query.get("query", query), separators=(",", ":"), default=str)
    text = " ".join(text.split())
    return text if len(text) <= QUERY_PREVIEW_CHARS else text[: QUERY_PREVIEW_CHARS - 3] + "..."


def is_failed_query(response: httpx.Response) -> bool:
    """Whether the body reports a failed query (reference section 8): an answer, not a fault."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, Mapping) and body.get("status") == "failed"


def error_text(response: httpx.Response) -> str:
    """Metabase's reason: plain-text bodies as they are, JSON ``errors`` / ``message`` joined."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300] or response.reason_phrase
    if isinstance(body, Mapping):
        if isinstance(body.get("errors"), Mapping):
            return "; ".join(f"{k}: {v}" for k, v in body["errors"].items())
        for key in ("error", "message"):
            if body.get(key):
                return str(body[key])[:300]
    return json.dumps(body)[:300]


def check_status(response: httpx.Response, source: str, path: str) -> None:
    """Raise a clear error for a 4xx/5xx answer outside query execution."""
    status = response.status_code
    if status < 400:
        return
    reason = error_text(response)
    if status == 404:
        fix = (
            "the id does not exist in this Metabase, or the route is wrong: check the "
            "database / table id (list them with the metabase_catalog job)"
        )
    elif status == 403:
        fix = "give the API key's group (or the user) access to this database / table"
    elif status == 400:
        fix = "correct the request parameters named above"
    else:
        fix = "check Metabase's server log; retry later"
    raise SourceError(f"HTTP {status} on {path}: {reason}", source=source + path, fix=fix)


def _failed_query_error(
    body: Mapping[str, Any], source: str, label: str, query: Mapping[str, Any], status: int
) -> MetabaseQueryError:
    error = str(body.get("error") or "(no error text)")
    error_type = body.get("error_type")
    kind = f", {error_type}" if error_type else ""
    if error_type == "missing-required-permissions":
        fix = "grant the API key's group (or the user) query access to this database"
    else:
        fix = "correct the query (run it in Metabase's editor to see the same error)"
    return MetabaseQueryError(
        f"query on {label} failed (HTTP {status}{kind}): {error} | query: {preview_query(query)}",
        error=error,
        error_type=error_type if isinstance(error_type, str) else None,
        source=source + "/api/dataset",
        fix=fix,
    )


def parse_query_response(
    response: httpx.Response, source: str, label: str, query: Mapping[str, Any]
) -> dict[str, Any]:
    """Decode a ``/api/dataset`` answer; raise on a failed query or a cut-off body.

    Raises:
        MetabaseQueryError: The body says ``"status": "failed"`` (any HTTP status).
        Retryable: The body is cut off or not JSON (retried by the client).
    """
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        if status in (200, 202):
            # Older releases append an error object to a half-streamed body (invalid JSON);
            # never read what came before it as a short result.
            raise Retryable(
                f"the {status} response body of the query on {label} was cut off or is not "
                f"valid JSON ({len(response.content)} bytes)"
            ) from None
        check_status(response, source, "/api/dataset")
        raise SourceError(
            f"HTTP {status} with a body that is not JSON", source=source + "/api/dataset"
        ) from None
    if isinstance(body, Mapping) and body.get("status") == "failed":
        raise _failed_query_error(body, source, label, query, status)
    if status >= 400:
        check_status(response, source, "/api/dataset")
    if not isinstance(body, Mapping) or body.get("status") != "completed":
        shown = body.get("status") if isinstance(body, Mapping) else type(body).__name__
        raise SourceError(
            f"query on {label} answered status {shown!r}, not 'completed' | query: "
            f"{preview_query(query)}",
            source=source + "/api/dataset",
            fix="check that METABASE_BASE_URL points at Metabase's API",
        )
    data = body.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("rows"), list):
        raise SourceError(
            f"completed query on {label} has no data.rows", source=source + "/api/dataset"
        )
    return dict(body)


def parse_export_response(
    response: httpx.Response, source: str, label: str, query: Mapping[str, Any], fmt: str
) -> Any:
    """Decode an export answer; a JSON object with ``"status": "failed"`` is a failed query."""
    status = response.status_code
    path = f"/api/dataset/{fmt}"
    if fmt != "json":
        if status >= 400:
            _raise_failed_or_status(response, source, label, query, path)
        text = response.text
        if text.lstrip().startswith("{") and '"status"' in text[:2000]:
            _raise_failed_or_status(response, source, label, query, path)
        return text
    try:
        body = response.json()
    except ValueError:
        if status < 400:
            raise Retryable(
                f"the {status} export body of the query on {label} was cut off or is not "
                f"valid JSON ({len(response.content)} bytes)"
            ) from None
        check_status(response, source, path)
        raise
    if isinstance(body, Mapping):
        if body.get("status") == "failed":
            raise _failed_query_error(body, source, label, query, status)
        check_status(response, source, path)
        raise SourceError(
            "the export answered a JSON object, expected an array of rows",
            source=source + path,
        )
    check_status(response, source, path)
    return body


def _raise_failed_or_status(
    response: httpx.Response, source: str, label: str, query: Mapping[str, Any], path: str
) -> None:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping) and body.get("status") == "failed":
        raise _failed_query_error(body, source, label, query, response.status_code)
    check_status(response, source, path)
