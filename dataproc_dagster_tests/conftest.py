"""Shared fixtures: a real ClickHouse per test, isolated settings.

Tests that take the ``clickhouse`` fixture run on both backends: the embedded engine (chDB on a
fresh directory) and a local ClickHouse server (one per test session, emptied before each
test). ``--backend embedded|server|both`` (default both) picks which. The fixture also sets
``CLICKHOUSE_URL`` so jobs that build their resource from the settings use the same backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.clickhouse.server import local_clickhouse_server
from dataproc_dagster.core.settings import get_settings

BACKENDS = ("embedded", "server")
# Databases of the server itself, never dropped between tests.
_SYSTEM_DATABASES = ("system", "information_schema", "INFORMATION_SCHEMA", "default")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=("embedded", "server", "both"),
        default=os.environ.get("DATAPROC_TEST_BACKEND", "both"),
        help="ClickHouse backend(s) for tests using the clickhouse fixture (default: both)",
    )


def selected_backends(config: pytest.Config) -> tuple[str, ...]:
    """The backends chosen with ``--backend``."""
    choice = config.getoption("--backend")
    return BACKENDS if choice == "both" else (choice,)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    backends = selected_backends(metafunc.config)
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None:
        backends = tuple(b for b in backends if b in marker.args)
    metafunc.parametrize("backend", backends or [pytest.param("none", marks=_skip_backend())])


def _skip_backend() -> pytest.MarkDecorator:
    return pytest.mark.skip(reason="the test's backend is not selected with --backend")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "server" in selected_backends(config):
        return
    for item in items:
        if item.get_closest_marker("server") is not None:
            item.add_marker(pytest.mark.skip(reason="--backend embedded: no ClickHouse server"))


@pytest.fixture(scope="session", autouse=True)
def _no_outside_clickhouse() -> Iterator[None]:
    """Tests never reach a ClickHouse named by the caller's environment (an exported
    ``CLICKHOUSE_URL``): only the ``clickhouse`` fixture sets it, to the session's server."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("CLICKHOUSE_URL", "CLICKHOUSE_DATABASE", "CLICKHOUSE_USER"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``DATAPROC_DATA_DIR`` (and so the embedded ClickHouse) at a fresh folder."""
    directory = tmp_path / "dataproc"
    monkeypatch.setenv("DATAPROC_DATA_DIR", str(directory))
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("CLICKHOUSE_DATABASE", raising=False)
    _forget_definitions()
    yield directory
    _forget_definitions()


def _forget_definitions() -> None:
    # Test jobs bind their ClickHouse resource from the settings when they are built, and
    # Dagster keeps the last reconstructed job per process: without this, a job run with
    # execute_job(reconstructable(...)) would reuse the previous test's backend.
    get_settings.cache_clear()
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()


# A password-protected user of the session's server, as on a production server.
SERVER_USER, SERVER_PASSWORD = "etl", "Etl-pw-7c1e09"


@pytest.fixture(scope="session")
def clickhouse_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One local ClickHouse server for the whole session; its URL."""
    folder = tmp_path_factory.mktemp("clickhouse-server")
    with local_clickhouse_server(folder, users={SERVER_USER: SERVER_PASSWORD}) as url:
        yield url


def reset_server(url: str) -> None:
    """Drop every database but the server's own, and every table of ``default``."""
    resource = ClickHouseResource(url=url)
    with resource.get_client() as client:
        databases = [row[0] for row in client.query("SHOW DATABASES").result_rows]
        for name in databases:
            if name not in _SYSTEM_DATABASES:
                client.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
        tables = client.query(
            "SELECT name FROM system.tables WHERE database = 'default' AND NOT is_temporary"
        ).result_rows
        for (name,) in tables:
            client.command(f"DROP TABLE IF EXISTS default.`{name}` SYNC")


@pytest.fixture
def clickhouse(
    backend: str,
    data_dir: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> ClickHouseResource:
    """A ``ClickHouseResource`` on an empty ClickHouse of the test's backend.

    Embedded: a fresh chDB directory under ``data_dir``. Server: the session's local server,
    emptied first; ``CLICKHOUSE_URL`` points at it for the test.
    """
    if backend == "embedded":
        return ClickHouseResource(url=f"chdb://{data_dir / 'clickhouse'}", lock_timeout=30)
    return _empty_server(request, monkeypatch)


@pytest.fixture
def server_clickhouse(
    data_dir: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> ClickHouseResource:
    """The session's local server, emptied, for tests about the server only (``server`` mark)."""
    return _empty_server(request, monkeypatch)


def _empty_server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> ClickHouseResource:
    url: str = request.getfixturevalue("clickhouse_server_url")
    reset_server(url)
    monkeypatch.setenv("CLICKHOUSE_URL", url)
    _forget_definitions()
    return ClickHouseResource(url=url)
