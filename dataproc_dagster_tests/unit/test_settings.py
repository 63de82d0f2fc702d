"""Settings: defaults, validation messages, secrets kept out of messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataproc_dagster.errors import ConfigError
from dataproc_dagster.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CLICKHOUSE_URL", "DATAPROC_DATA_DIR", "LOG_LEVEL", "METABASE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_default_is_embedded_clickhouse_under_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.dataproc_data_dir == tmp_path / ".dataproc"
    assert settings.clickhouse_url == f"chdb://{tmp_path / '.dataproc' / 'clickhouse'}"
    assert settings.log_level == "INFO"


def test_data_dir_moves_the_embedded_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATAPROC_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_settings().clickhouse_url == f"chdb://{tmp_path / 'elsewhere' / 'clickhouse'}"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CLICKHOUSE_URL=http://ch.internal:8123\nLOG_LEVEL=debug\n")
    settings = load_settings()
    assert settings.clickhouse_url == "http://ch.internal:8123"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CLICKHOUSE_URL", "postgres://db", "chdb:///"),
        ("LOG_LEVEL", "chatty", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("METABASE_BASE_URL", "metabase.local", "http(s)://"),
        ("METABASE_TIMEOUT", "-3", "greater than 0"),
        ("CHUNK_ROWS", "lots", "integer"),
        ("DEFAULT_TIMEZONE", "Mars/Olympus", "IANA"),
    ],
)
def test_invalid_value_names_the_variable_and_the_form(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert variable in message and expected in message


def test_secret_values_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METABASE_API_KEY", "mb_supersecret")
    monkeypatch.setenv("LOG_LEVEL", "nope")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "mb_supersecret" not in str(raised.value)
    assert "mb_supersecret" not in repr(
        load_settings.__wrapped__ if hasattr(load_settings, "__wrapped__") else ""
    )
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    assert "mb_supersecret" not in repr(load_settings())
