"""The process environment wins over .env: what the code location restores when it loads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dataproc_dagster.core.environment import (
    restore_process_environment,
    shell_copies,
    shell_markers,
)


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / ".env"
    path.write_text("LOG_LEVEL=INFO\nCLICKHOUSE_LOCK_TIMEOUT=600\nCHUNK_ROWS=1000\n")
    monkeypatch.chdir(tmp_path)
    return path


def test_shell_copies_passed_down_by_the_cli_win(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a process started by `dagster dev` sees: .env copied over, the shell's copies next."""
    shell = {"LOG_LEVEL": "DEBUG", "CLICKHOUSE_LOCK_TIMEOUT": "5", "HOME": "/home/x"}
    copies = shell_copies(shell, ["LOG_LEVEL", "CLICKHOUSE_LOCK_TIMEOUT", "CHUNK_ROWS"])
    assert copies == {
        "DATAPROC_SHELL__LOG_LEVEL": "DEBUG",
        "DATAPROC_SHELL__CLICKHOUSE_LOCK_TIMEOUT": "5",
    }
    for name, value in copies.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOG_LEVEL", "INFO")  # copied from .env by Dagster's CLI
    monkeypatch.setenv("CLICKHOUSE_LOCK_TIMEOUT", "600")
    monkeypatch.setenv("CHUNK_ROWS", "1000")  # only in .env: stays

    assert restore_process_environment() == ["CLICKHOUSE_LOCK_TIMEOUT", "LOG_LEVEL"]
    assert os.environ["LOG_LEVEL"] == "DEBUG"
    assert os.environ["CLICKHOUSE_LOCK_TIMEOUT"] == "5"
    assert os.environ["CHUNK_ROWS"] == "1000"


def test_a_value_the_program_set_itself_stays(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAPROC_SHELL__LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")  # not the .env value: set on purpose
    assert restore_process_environment() == []
    assert os.environ["LOG_LEVEL"] == "WARNING"


def test_no_env_file_no_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATAPROC_SHELL__LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    assert restore_process_environment() == []
    assert os.environ["LOG_LEVEL"] == "INFO"


def test_a_reloaded_process_takes_the_current_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A code server started after a reload inherits the .env of `dagster dev`'s start: an
    edited value is taken from .env now, a removed one is dropped, the shell's value wins."""
    monkeypatch.chdir(tmp_path)
    shell = {"LOG_LEVEL": "DEBUG", "HOME": "/home/x"}
    at_start = {"LOG_LEVEL": "INFO", "API_TOKEN": "old", "GONE_TOKEN": "secret"}
    for name, value in shell_markers(shell, at_start).items():
        monkeypatch.setenv(name, value)
    for name, value in at_start.items():  # what every process inherits from `dagster dev`
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(
        "dataproc_dagster.core.environment._initial_environment", lambda: dict(at_start)
    )
    monkeypatch.delenv("NEW_NAME", raising=False)  # undone after the test
    (tmp_path / ".env").write_text("LOG_LEVEL=WARNING\nAPI_TOKEN=new\nNEW_NAME=1\n")

    assert restore_process_environment() == ["API_TOKEN", "GONE_TOKEN", "LOG_LEVEL", "NEW_NAME"]
    assert os.environ["API_TOKEN"] == "new"
    assert "GONE_TOKEN" not in os.environ
    assert os.environ["LOG_LEVEL"] == "DEBUG"
    assert os.environ["NEW_NAME"] == "1"
    assert restore_process_environment() == []  # a second load changes nothing
