"""An HTTP server on 127.0.0.1 that answers every request as a ClickHouse server refusing the login.

ClickHouse's HTTP interface takes credentials as HTTP Basic auth or as the ``X-ClickHouse-User`` /
``X-ClickHouse-Key`` headers and answers a wrong password with status 401 and a body such as
``Code: 516. DB::Exception: <user>: Authentication failed. (AUTHENTICATION_FAILED)``.
"""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def refusing_clickhouse() -> Iterator[tuple[str, list[str]]]:
    """Yield ``host:port`` and the ``user:password`` of each login tried, in order."""
    logins: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _deny(self) -> None:
            header = self.headers.get("Authorization") or ""
            if header.startswith("Basic "):
                login = base64.b64decode(header[6:]).decode()
            else:
                user = self.headers.get("X-ClickHouse-User") or "default"
                login = f"{user}:{self.headers.get('X-ClickHouse-Key') or ''}"
            logins.append(login)
            user = login.split(":", 1)[0]
            body = f"Code: 516. DB::Exception: {user}: Authentication failed. "
            body += "(AUTHENTICATION_FAILED)"
            self.send_response(401)
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = _deny

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}", logins
    finally:
        server.shutdown()
        server.server_close()
