"""A password inside a URL logs in (CLICKHOUSE_URL) or is refused, and is never shown or stored."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.settings import load_settings
from dataproc_dagster_tests.helpers.cli import REPO, cli_env, job_execute_command, run_dagster
from dataproc_dagster_tests.servers.refusing_clickhouse import refusing_clickhouse

PASSWORD = "Pw-9f4e1c-url-secret"


@pytest.fixture
def fake_server() -> Iterator[tuple[str, list[str]]]:
    """A ClickHouse address that refuses every login, and the logins it saw."""
    with refusing_clickhouse() as server:
        yield server


def _grep_tree(folder: Path, needle: str) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            found.append(str(path))
    return found


def test_settings_move_url_credentials_out_of_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", f"http://etl:{PASSWORD}@db.example:8123")
    settings = load_settings()
    assert settings.clickhouse_url == "http://db.example:8123"
    assert settings.clickhouse_user == "etl"
    assert settings.clickhouse_password.get_secret_value() == PASSWORD
    resource = ClickHouseResource.from_settings(settings)
    assert PASSWORD not in repr(resource) and PASSWORD not in resource.describe()


@pytest.mark.parametrize(
    "url",
    [f"ftp://etl:{PASSWORD}@db:9000", f"http://etl:{PASSWORD}@db:notaport", f"etl:{PASSWORD}@db"],
)
def test_a_bad_clickhouse_url_is_refused_without_echoing_its_password(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", url)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "CLICKHOUSE_URL" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_metabase_url_with_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METABASE_BASE_URL", f"https://admin:{PASSWORD}@mb.example")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "METABASE_BASE_URL" in str(caught.value) and "METABASE_PASSWORD" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_http_and_resource_urls_with_credentials_are_refused() -> None:
    from dataproc_dagster.sources.http.config import spec_from_config
    from dataproc_dagster.sources.http.resource import HttpResource

    with pytest.raises(ConfigError) as caught:
        spec_from_config({"url": f"https://bob:{PASSWORD}@api.example/items"})
    assert "HTTP extractor url" in str(caught.value) and PASSWORD not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        HttpResource(base_url=f"https://bob:{PASSWORD}@api.example/").source()
    assert "base_url" in str(caught.value) and PASSWORD not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        ClickHouseResource(url=f"http://etl:{PASSWORD}@db:8123").describe()
    assert PASSWORD not in str(caught.value)
    resource = ClickHouseResource(url=f"http://etl:{PASSWORD}@db:8123")
    with pytest.raises(ConfigError) as caught, resource.get_client():
        pass
    assert "CLICKHOUSE_PASSWORD" in str(caught.value) and PASSWORD not in str(caught.value)


def test_a_job_logs_in_with_the_url_credentials_and_stores_no_password(
    fake_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    address, seen = fake_server
    home, data, logs = tmp_path / "home", tmp_path / "data", tmp_path / "logs"
    env = {
        "CLICKHOUSE_URL": f"http://etl:{PASSWORD}@{address}",
        "DATAPROC_LOG_DIR": str(logs),
        "CLICKHOUSE_CONNECT_TIMEOUT": "2",
    }
    result = run_dagster(job_execute_command("migrate"), data, home, extra_env=env, timeout=240)
    assert result.returncode != 0  # the stand-in server refuses the login
    assert f"etl:{PASSWORD}" in seen  # the URL's user and password were used to log in
    assert "Authentication failed" in result.stdout + result.stderr
    assert PASSWORD not in result.stdout and PASSWORD not in result.stderr
    assert _grep_tree(home, PASSWORD) == []
    assert _grep_tree(logs, PASSWORD) == []
    if data.exists():
        assert _grep_tree(data, PASSWORD) == []

    cli = subprocess.run(
        [sys.executable, "-m", "dataproc_dagster.cli.migrations", "status"],
        cwd=REPO,
        env={**cli_env(data, home), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 1
    assert PASSWORD not in cli.stdout + cli.stderr
    assert "127.0.0.1" in cli.stderr
