"""A small JSON API for the HTTP extractor's tests and benchmark, served on 127.0.0.1.

Every pagination style the extractor knows has an endpoint over the same records:

=============  =========================================================================
``/pages``     ``?page=&per_page=`` (1-based; ``/pages0`` is 0-based) ->
               ``{"data": {"items": [...]}, "meta": {"total_pages", "total", ...}}``
``/offset``    ``?offset=&limit=`` -> ``{"items": [...], "total": N}``
``/cursor``    ``?cursor=&limit=`` -> ``{"results": [...], "next_cursor": "..." | null}``
``/next``      ``?page=&per_page=`` -> ``{"results": [...], "links": {"next": "http://..."}}``
``/link``      ``?page=&per_page=`` -> ``[...]`` plus ``Link: <...>; rel="next"``
``/single``    every record in one list
``/raw``       the body in :attr:`ApiState.raw_body` as is (for shape errors)
=============  =========================================================================

``updated_since`` filters records with ``updated_at >=`` the value; ``updated_from`` and
``updated_before`` (ISO 8601 times or dates, with an offset or UTC) keep a time window
``[from, before)`` of ``updated_at``. Auth (bearer, basic, an
API key in a header or query parameter), a delay on every response and faults (429 with
``Retry-After``, 5xx, HTML pages, malformed JSON, timeouts, dropped connections) are set on
:class:`ApiState`. Run ``python -m dataproc_dagster_tests.servers.http_api --records N`` to
serve generated records from a separate process (the benchmark does).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def make_record(i: int) -> dict[str, Any]:
    """Record number ``i`` (0-based) of the generated data set; ``updated_at`` grows with ``i``."""
    return {
        "id": i + 1,
        "name": f"item {i + 1}",
        "price": round(1.5 * (i % 1000), 2),
        "active": i % 3 != 0,
        "updated_at": (EPOCH + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tags": ["a", "b"] if i % 2 else ["c"],
        "owner": {"id": i % 7, "address": {"city": f"city {i % 5}"}},
    }


def sample_records(n: int) -> list[dict[str, Any]]:
    """The first ``n`` generated records as a list (tests may append to it)."""
    return [make_record(i) for i in range(n)]


class GeneratedRecords(Sequence[dict[str, Any]]):
    """``n`` records made on demand, so that a large data set costs no memory."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [make_record(i) for i in range(*index.indices(self.n))]
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError(index)
        return make_record(index)


@dataclass
class Fault:
    """A fault answered instead of the normal response, ``times`` times.

    Kinds: ``429`` / ``503`` / ``502`` / ``504`` / ``500`` (JSON error body, optional
    ``retry_after`` header), ``html`` (500 with an HTML page), ``html200`` (200 with an HTML
    page), ``malformed`` (a complete 200 response whose JSON stops half way, as a proxy that
    cut it sends), ``cut`` (200 headers with the full ``Content-Length``, half the body, then
    the connection closes), ``timeout`` (sleep ``seconds`` first), ``drop`` (close the
    connection without answering).
    """

    kind: str
    path: str | None = None
    when: dict[str, str] = field(default_factory=dict)
    times: int = 1
    retry_after: str | None = None
    seconds: float = 2.0

    def matches(self, path: str, params: dict[str, str]) -> bool:
        if self.times <= 0:
            return False
        if self.path is not None and self.path != path:
            return False
        return all(params.get(k) == v for k, v in self.when.items())


@dataclass
class ApiState:
    """What the server answers; tests change it between requests."""

    records: Sequence[dict[str, Any]] = field(
        default_factory=lambda: [make_record(i) for i in range(250)]
    )
    auth: tuple[str, ...] | None = None
    delay: float = 0.0
    max_page_size: int = 1000
    default_page_size: int = 100
    faults: list[Fault] = field(default_factory=list)
    raw_body: Any = None
    # Rendered 200 responses by request path, when set: lets a benchmark's server spend its
    # CPU on HTTP rather than on re-encoding the same pages (the client shares the CPUs).
    cache: dict[str, tuple[bytes, dict[str, str]]] | None = None
    log: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0

    def fault(self, kind: str, *, path: str | None = None, times: int = 1, **kwargs: Any) -> Fault:
        """Add a fault; ``when`` (a dict) limits it to requests with those parameters."""
        item = Fault(kind=kind, path=path, times=times, **kwargs)
        self.faults.append(item)
        return item

    def take_fault(self, path: str, params: dict[str, str]) -> Fault | None:
        with self.lock:
            for item in self.faults:
                if item.matches(path, params):
                    item.times -= 1
                    return item
        return None

    def requests_to(self, path: str) -> list[dict[str, str]]:
        """Query parameters of every request to ``path``, in arrival order."""
        return [params for p, params, _ in self.log if p == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One send per response and no Nagle: otherwise delayed ACKs add ~40 ms to every request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with state.lock:
            state.log.append((parts.path, params, dict(self.headers.items())))
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            self._answer(state, parts.path, params)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _answer(self, state: ApiState, path: str, params: dict[str, str]) -> None:
        if state.delay:
            time.sleep(state.delay)
        if not self._authorised(state, params):
            self._send(401, {"error": "invalid credentials"})
            return
        fault = state.take_fault(path, params)
        if fault is not None and self._fault(fault):
            return
        cached = state.cache.get(self.path) if state.cache is not None else None
        if cached is not None:
            self._send_bytes(200, cached[0], "application/json", cached[1])
            return
        try:
            body, headers = self._route(state, path, params)
        except KeyError:
            self._send(404, {"error": f"no route {path}"})
            return
        except ValueError as exc:
            self._send(400, {"error": str(exc)})
            return
        data = json.dumps(body).encode()
        if state.cache is not None:
            state.cache[self.path] = (data, headers)
        self._send_bytes(200, data, "application/json", headers)

    def _authorised(self, state: ApiState, params: dict[str, str]) -> bool:
        if state.auth is None:
            return True
        kind = state.auth[0]
        if kind == "bearer":
            return self.headers.get("Authorization") == f"Bearer {state.auth[1]}"
        if kind == "basic":
            raw = f"{state.auth[1]}:{state.auth[2]}".encode()
            return self.headers.get("Authorization") == "Basic " + base64.b64encode(raw).decode()
        if kind == "header":
            return self.headers.get(state.auth[1]) == state.auth[2]
        if kind == "query":
            return params.pop(state.auth[1], None) == state.auth[2]
        return False

    def _fault(self, fault: Fault) -> bool:
        kind = fault.kind
        if kind == "drop":
            self.close_connection = True
            return True
        if kind == "timeout":
            time.sleep(fault.seconds)
            return False
        if kind.isdigit():
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._send(int(kind), {"error": f"injected {kind}"}, headers)
            return True
        if kind in ("html", "html200"):
            self._send_bytes(500 if kind == "html" else 200, _HTML_PAGE, "text/html")
            return True
        if kind == "malformed":
            self._send_bytes(200, b'{"data": {"items": [{"id": 1,', "application/json")
            return True
        if kind == "cut":
            body = json.dumps({"data": {"items": [make_record(0)]}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return True
        raise ValueError(f"unknown fault {kind}")

    def _route(
        self, state: ApiState, path: str, params: dict[str, str]
    ) -> tuple[Any, dict[str, str]]:
        records: Sequence[dict[str, Any]] = state.records
        since = params.get("updated_since")
        if since:
            records = [r for r in records if str(r.get("updated_at", "")) >= since]
        start, end = params.get("updated_from"), params.get("updated_before")
        if start or end:
            records = [r for r in records if _in_range(str(r.get("updated_at", "")), start, end)]
        total = len(records)
        base = f"http://{self.headers.get('Host')}"
        filters = ("updated_since", "updated_from", "updated_before")
        extra = {k: v for k, v in params.items() if k in filters}
        if path == "/raw":
            return state.raw_body, {}
        if path == "/single":
            return list(records[:]), {}
        if path in ("/pages", "/pages0", "/next", "/link"):
            first = 0 if path == "/pages0" else 1
            size = self._size(state, params.get("per_page"))
            page = int(params.get("page", first))
            start = (page - first) * size
            items = list(records[start : start + size]) if start >= 0 else []
            pages = math.ceil(total / size)
            if path in ("/pages", "/pages0"):
                meta = {"page": page, "per_page": size, "total_pages": pages, "total": total}
                return {"data": {"items": items}, "meta": meta}, {}
            following = None
            if page < pages:
                following = f"{base}{path}?" + urlencode(
                    {"page": page + 1, "per_page": size, **extra}
                )
            if path == "/next":
                return {"results": items, "links": {"next": following}}, {}
            headers = {"Link": f'<{following}>; rel="next"'} if following else {}
            return items, headers
        if path == "/offset":
            size = self._size(state, params.get("limit"))
            start = int(params.get("offset", 0))
            return {"items": list(records[start : start + size]), "total": total}, {}
        if path == "/cursor":
            size = self._size(state, params.get("limit"))
            token = params.get("cursor")
            start = int(base64.urlsafe_b64decode(token).decode()) if token else 0
            items = list(records[start : start + size])
            end = start + len(items)
            nxt = base64.urlsafe_b64encode(str(end).encode()).decode() if end < total else None
            return {"results": items, "next_cursor": nxt}, {}
        raise KeyError(path)

    def _size(self, state: ApiState, raw: str | None) -> int:
        size = int(raw) if raw else state.default_page_size
        if size < 1:
            raise ValueError("page size must be positive")
        return min(size, state.max_page_size)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(body).encode(), "application/json", headers)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _in_range(value: str, start: str | None, end: str | None) -> bool:
    """``start <= value < end`` on ISO 8601 UTC text (``...Z``); a bound may be a date."""
    stamp = _instant(value)
    return (start is None or stamp >= _instant(start)) and (end is None or stamp < _instant(end))


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, state: ApiState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@dataclass
class RunningApi:
    """A started server: its base URL and its state."""

    url: str
    state: ApiState


@contextmanager
def serve_api(state: ApiState | None = None) -> Iterator[RunningApi]:
    """Serve the API on a free port of 127.0.0.1 in a thread for the block."""
    server = _Server(state or ApiState())
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-api", daemon=True
    )
    thread.start()
    try:
        yield RunningApi(f"http://127.0.0.1:{server.server_address[1]}", server.state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main() -> None:
    """Serve generated records until killed; prints the base URL on the first line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to every response")
    parser.add_argument("--cache", action="store_true", help="memoize rendered pages")
    args = parser.parse_args()
    state = ApiState(records=GeneratedRecords(args.records), delay=args.delay)
    if args.cache:
        state.cache = {}
    server = _Server(state)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    with suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
