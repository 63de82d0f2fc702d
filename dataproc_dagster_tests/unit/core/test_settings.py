"""Settings: defaults, validation messages, secrets kept out of messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.settings import load_settings


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


def test_dotenv_that_is_not_utf8_names_the_file_line_and_byte(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"LOG_LEVEL=INFO\nMETABASE_USERNAME=J\xfcrgen\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert ".env is not valid UTF-8" in message
    assert "byte 34 (line 2)" in message and "0xfc" in message


def test_a_chdb_url_without_a_directory_uses_the_data_dir(tmp_path: Path) -> None:
    for url in ("chdb://", "chdb:///"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("CLICKHOUSE_URL", url)
            settings = load_settings()
        assert settings.clickhouse_url == f"chdb://{tmp_path / '.dataproc' / 'clickhouse'}"


def test_a_resource_with_a_chdb_url_without_a_directory_is_refused(tmp_path: Path) -> None:
    from dataproc_dagster.clickhouse.resource import ClickHouseResource

    with (
        pytest.raises(ConfigError, match="names no directory"),
        ClickHouseResource(url="chdb://").get_client(),
    ):
        pass
    assert list(tmp_path.iterdir()) == []  # no engine folders in the working directory


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "CLICKHOUSE_LOCK_TIMEOUT",
            "-1",
            "CLICKHOUSE_LOCK_TIMEOUT: Input should be greater than 0",
        ),
        ("CLICKHOUSE_LOCK_TIMEOUT", "1e12", "CLICKHOUSE_LOCK_TIMEOUT: Input should be less than"),
        ("METABASE_TIMEOUT", "1e12", "METABASE_TIMEOUT: Input should be less than"),
        ("CLICKHOUSE_URL", "http://host:notaport", "CLICKHOUSE_URL: Value error, is not a valid"),
        ("METABASE_BASE_URL", "http://host:notaport", "METABASE_BASE_URL: Value error, is not a"),
    ],
)
def test_absurd_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value)


def test_a_data_dir_that_is_a_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("DATAPROC_DATA_DIR", str(tmp_path / "afile"))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "DATAPROC_DATA_DIR: Value error, is a file, not a folder" in str(caught.value)


@pytest.mark.parametrize("timeout", [-1, 0, 1e12, float("nan")])
def test_absurd_http_timeouts_name_the_option(timeout: float) -> None:
    from dataproc_dagster.sources.http.config import spec_from_config

    with pytest.raises(ConfigError) as caught:
        spec_from_config({"url": "https://api.example/items", "timeout": timeout})
    assert "HTTP extractor timeout must be a number of seconds above 0" in str(caught.value)


def test_an_http_url_with_a_bad_port_names_the_option() -> None:
    from dataproc_dagster.sources.http.config import spec_from_config

    with pytest.raises(ConfigError) as caught:
        spec_from_config({"url": "http://host:notaport/items"})
    assert "HTTP extractor url is not a valid URL (the port is not a number" in str(caught.value)
