"""A local ClickHouse server started from the installed chdb package, for development and tests.

The chdb package holds the full ``clickhouse-local``, which can serve ClickHouse's real HTTP
interface. A child process runs it with its data in a folder and blocks on its stdin: closing
that pipe (or the parent dying, which closes it too) stops the server, so no orphan is left.
This is not a production server: user ``default`` without a password (plus any users a test
asks for), bound to 127.0.0.1, no replication. In production point ``CLICKHOUSE_URL`` at a
real server or cluster (see docs/operations.md).

Command line (``./run.sh clickhouse ...`` calls it)::

    python -P dataproc_dagster/clickhouse/server.py start [--port N] [--data DIR]
    python -P dataproc_dagster/clickhouse/server.py status [--data DIR]
    python -P dataproc_dagster/clickhouse/server.py stop [--data DIR]

``start`` runs a small supervisor process in the background that holds the server's stdin pipe;
``stop`` asks it to close the pipe and waits for the server to stop.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape as xml_escape

URL_FILE = "url"
PID_FILE = "supervisor.pid"
LOG_FILE = "server.log"
_PORT_FILE = "port"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0

# The SQL the child runs: start the HTTP listener, write the port it got, then block reading
# stdin until the parent closes the pipe, and stop listening.
_SERVE_SQL = """
SYSTEM START LISTEN HTTP;
SELECT getServerPort('http_port') INTO OUTFILE '{port_file}' TRUNCATE FORMAT TSV;
SELECT count() FROM file('/dev/stdin', 'LineAsString') FORMAT Null;
SYSTEM STOP LISTEN HTTP;
"""


class ClickHouseServerError(RuntimeError):
    """The local ClickHouse server could not start or stop: what, where, and the fix."""

    def __init__(self, message: str, *, source: str | None = None, fix: str | None = None) -> None:
        text = f"[{source}] {message}" if source else message
        super().__init__(f"{text} Fix: {fix}" if fix else text)


def default_data_dir() -> Path:
    """``$DATAPROC_DATA_DIR/clickhouse-server`` (``.dataproc/clickhouse-server`` by default)."""
    base = os.environ.get("DATAPROC_DATA_DIR") or ".dataproc"
    return Path(base).expanduser().resolve() / "clickhouse-server"


_USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _config_xml(port: int, users_file: Path | None = None) -> str:
    users = f"  <users_config>{xml_escape(str(users_file))}</users_config>\n" if users_file else ""
    return (
        "<clickhouse>\n"
        "  <listen_host>127.0.0.1</listen_host>\n"
        f"  <http_port>{port}</http_port>\n"
        f"{users}"
        "</clickhouse>\n"
    )


def _users_xml(users: Mapping[str, str]) -> str:
    """ClickHouse's users file: ``default`` without a password, plus ``users`` (name: password)."""

    def user(name: str, password: str) -> str:
        digest = hashlib.sha256(password.encode()).hexdigest() if password else ""
        secret = (
            f"<password_sha256_hex>{digest}</password_sha256_hex>"
            if password
            else ("<password></password>")
        )
        return (
            f"    <{name}>{secret}<networks><ip>127.0.0.1</ip><ip>::1</ip></networks>"
            f"<profile>default</profile><quota>default</quota></{name}>\n"
        )

    body = user("default", "") + "".join(user(n, pw) for n, pw in users.items())
    return (
        "<clickhouse>\n  <profiles><default/></profiles>\n  <quotas><default/></quotas>\n"
        f"  <users>\n{body}  </users>\n</clickhouse>\n"
    )


# The child imports chdb only (not this package, whose import loads Dagster): it stays small.
# chdb._chdb.query runs clickhouse-local's LocalServer, which can listen (chdb.connect() runs an
# embedded server that cannot); it is an underscore API of chdb-core.
_SERVE_CODE = (
    "import sys\nfrom chdb import _chdb\n_chdb.query(sys.argv[1], 'TSV', path=sys.argv[2])\n"
)


class LocalClickHouseServer:
    """One local ClickHouse server in a child process.

    Args:
        data_dir: Folder for the server's data, config, port and log files.
        port: HTTP port on 127.0.0.1; 0 lets the system pick a free one.
        users: Users besides ``default`` (which has no password), name: password; for trying
            credentials as on a production server.
    """

    def __init__(
        self, data_dir: Path | str, port: int = 0, users: Mapping[str, str] | None = None
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.users = dict(users or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        if not self.port:
            raise ClickHouseServerError("the server is not started", source=str(self.data_dir))
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = _START_TIMEOUT) -> str:
        """Start the server, wait until it answers, and return its URL.

        Raises:
            ClickHouseServerError: When it does not start (port taken, folder in use, ...),
                with the end of its log.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "data").mkdir(exist_ok=True)
        config_dir = self.data_dir / "config"
        config_dir.mkdir(exist_ok=True)
        users_file = config_dir / "users.xml" if self.users else None
        if users_file is not None:
            for name in self.users:
                if not _USER_NAME.match(name):
                    raise ClickHouseServerError(
                        f"invalid user name {name!r}",
                        source=str(self.data_dir),
                        fix="use letters, digits and underscores",
                    )
            users_file.write_text(_users_xml(self.users), encoding="utf-8")
        # clickhouse-local reads ./config.xml from its working directory.
        (config_dir / "config.xml").write_text(_config_xml(self.port, users_file), encoding="utf-8")
        port_file = self.data_dir / _PORT_FILE
        port_file.unlink(missing_ok=True)
        self._log = open(self.data_dir / LOG_FILE, "ab")  # noqa: SIM115 - closed in stop()
        sql = _SERVE_SQL.format(port_file=str(port_file).replace("'", "\\'"))
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVE_CODE, sql, str(self.data_dir / "data")],
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=self._log,
            cwd=config_dir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._close_log()
                raise ClickHouseServerError(
                    f"the server exited with code {self._process.returncode}: {self._log_tail()}",
                    source=str(self.data_dir),
                    fix="if the port is taken, pick another (--port) or 0 for a free one; if "
                    "the folder is in use, another server runs on it (`./run.sh clickhouse "
                    "status`) or use another --data folder",
                )
            text = port_file.read_text(encoding="utf-8").strip() if port_file.exists() else ""
            if text.isdigit() and _ping(f"http://127.0.0.1:{text}"):
                self.port = int(text)
                return self.url
            time.sleep(0.1)
        self.stop()
        raise ClickHouseServerError(
            f"the server did not answer within {timeout:.0f} s: {self._log_tail()}",
            source=str(self.data_dir),
            fix="look at the log file named above",
        )

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Close the server's stdin so it stops, and wait for it (killed after ``timeout``)."""
        process = self._process
        if process is not None:
            if process.stdin is not None and not process.stdin.closed:
                with suppress(OSError):
                    process.stdin.close()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self._process = None
        self._close_log()
        (self.data_dir / _PORT_FILE).unlink(missing_ok=True)

    def is_running(self) -> bool:
        """True while the child process lives."""
        return self._process is not None and self._process.poll() is None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self) -> str:
        path = self.data_dir / LOG_FILE
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        errors = [line for line in lines if "Exception" in line or "Error" in line]
        tail = (errors or lines)[-3:]
        return " | ".join(tail)[-1500:] + f" (log: {path})"


@contextmanager
def local_clickhouse_server(
    data_dir: Path | str, port: int = 0, users: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Run a local ClickHouse server for the block and yield its URL.

    For tests and benchmarks: ``with local_clickhouse_server(tmp) as url:`` then set
    ``CLICKHOUSE_URL=url``. The server stops when the block ends (or the process dies).
    ``users`` adds password-protected users (name: password) beside ``default``.
    """
    server = LocalClickHouseServer(data_dir, port, users)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def _ping(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


# --- the background server of ``./run.sh clickhouse start`` ---------------------------------


def _supervise(data_dir: Path, port: int) -> int:
    """Supervisor process: hold the server's stdin pipe until SIGTERM, then stop it."""
    server = LocalClickHouseServer(data_dir, port)
    stopping = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        url = server.start()
    except ClickHouseServerError as exc:
        (data_dir / "start-error").write_text(str(exc), encoding="utf-8")
        return 1
    (data_dir / URL_FILE).write_text(url + "\n", encoding="utf-8")
    try:
        while not stopping and server.is_running():
            time.sleep(0.2)
    finally:
        server.stop()
        (data_dir / URL_FILE).unlink(missing_ok=True)
        (data_dir / PID_FILE).unlink(missing_ok=True)
    return 0


def _running_pid(data_dir: Path) -> int | None:
    path = data_dir / PID_FILE
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def running_url(data_dir: Path | str | None = None) -> str | None:
    """The URL of the background server on ``data_dir`` when it runs and answers, else None."""
    folder = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
    if _running_pid(folder) is None:
        return None
    try:
        url = (folder / URL_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return url if url and _ping(url) else None


def start_background(data_dir: Path, port: int = 0, timeout: float = _START_TIMEOUT) -> str:
    """Start the supervisor in the background (its own session) and return the server URL.

    Raises:
        ClickHouseServerError: When a server already runs on the folder or it does not start.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    pid = _running_pid(data_dir)
    if pid is not None:
        url = running_url(data_dir)
        raise ClickHouseServerError(
            f"a local server already runs on this folder (pid {pid}, {url or 'starting'})",
            source=str(data_dir),
            fix="use it, or `./run.sh clickhouse stop` first",
        )
    for name in (URL_FILE, "start-error"):
        (data_dir / name).unlink(missing_ok=True)
    with open(os.devnull, "rb") as devnull, open(data_dir / LOG_FILE, "ab") as log:
        supervisor = subprocess.Popen(
            [
                sys.executable,
                # As a script (-P: its folder, which holds a package named http, must not
                # shadow the standard library): importing the package would load Dagster.
                "-P",
                __file__,
                "_supervise",
                str(data_dir),
                str(port),
            ],
            stdin=devnull,
            stdout=log,
            stderr=log,
            start_new_session=True,  # survives the shell that ran `./run.sh clickhouse start`
        )
    (data_dir / PID_FILE).write_text(f"{supervisor.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url_path = data_dir / URL_FILE
        if url_path.exists():
            return url_path.read_text(encoding="utf-8").strip()
        if supervisor.poll() is not None:
            (data_dir / PID_FILE).unlink(missing_ok=True)
            error = data_dir / "start-error"
            detail = error.read_text(encoding="utf-8") if error.exists() else "no detail"
            raise ClickHouseServerError(f"the local server did not start: {detail}")
        time.sleep(0.1)
    stop_background(data_dir)
    raise ClickHouseServerError(
        f"the local server did not start within {timeout:.0f} s",
        source=str(data_dir),
        fix=f"look at {data_dir / LOG_FILE}",
    )


def stop_background(data_dir: Path, timeout: float = _STOP_TIMEOUT) -> bool:
    """Stop the background server on ``data_dir``; False when none was running."""
    pid = _running_pid(data_dir)
    if pid is None:
        (data_dir / PID_FILE).unlink(missing_ok=True)
        (data_dir / URL_FILE).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _running_pid(data_dir) is not None:
        time.sleep(0.1)
    if _running_pid(data_dir) is not None:
        raise ClickHouseServerError(
            f"the supervisor (pid {pid}) did not stop within {timeout:.0f} s",
            source=str(data_dir),
            fix=f"kill {pid}; the server stops when its supervisor is gone",
        )
    return True


def main(argv: list[str] | None = None) -> int:
    """``start`` / ``stop`` / ``status`` of the local server (``./run.sh clickhouse``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["_supervise"]:
        return _supervise(Path(args[1]), int(args[2]))
    parser = argparse.ArgumentParser(
        prog="./run.sh clickhouse",
        description="A local ClickHouse server for development and tests (not for production).",
    )
    parser.add_argument("action", choices=("start", "stop", "status"), nargs="?", default="status")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data folder (default: $DATAPROC_DATA_DIR/clickhouse-server)",
    )
    options = parser.parse_args(args)
    data_dir = (options.data or default_data_dir()).expanduser().resolve()
    try:
        if options.action == "start":
            url = start_background(data_dir, options.port)
            print(url)
            print(f"local ClickHouse server running, data in {data_dir}", file=sys.stderr)
            print(f"URL written to {data_dir / URL_FILE}; use it with:", file=sys.stderr)
            print(f"  export CLICKHOUSE_URL={url}", file=sys.stderr)
            print("stop it with: ./run.sh clickhouse stop", file=sys.stderr)
            return 0
        if options.action == "stop":
            stopped = stop_background(data_dir)
            print("stopped" if stopped else f"no local server runs on {data_dir}")
            return 0
        current = running_url(data_dir)
        if current:
            print(current)
            return 0
        print(f"no local server runs on {data_dir}", file=sys.stderr)
        return 3
    except ClickHouseServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
