"""The local ClickHouse server: ``./run.sh clickhouse start|status|stop`` and its failure modes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dataproc_dagster.clickhouse.server import (
    PID_FILE,
    URL_FILE,
    ClickHouseServerError,
    LocalClickHouseServer,
)
from dataproc_dagster_tests.helpers.cli import REPO

pytestmark = pytest.mark.server


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", str(REPO / "dataproc_dagster" / "clickhouse" / "server.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/?query=SELECT%201", timeout=2) as response:
            return response.read().strip() == b"1"
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_start_status_stop_under_the_data_dir(tmp_path: Path) -> None:
    env = {**os.environ, "DATAPROC_DATA_DIR": str(tmp_path / "dataproc")}
    folder = tmp_path / "dataproc" / "clickhouse-server"
    started = _cli("start", env=env)
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url.startswith("http://127.0.0.1:")
        assert (folder / URL_FILE).read_text().strip() == url
        assert "CLICKHOUSE_URL=" + url in started.stderr
        assert _answers(url)
        assert _cli("status", env=env).stdout.strip() == url
        again = _cli("start", env=env)
        assert again.returncode == 1 and "already runs" in again.stderr
    finally:
        stopped = _cli("stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not _answers(url)
    assert not (folder / URL_FILE).exists() and not (folder / PID_FILE).exists()
    status = _cli("status", env=env)
    assert status.returncode == 3 and "no local server" in status.stderr


def test_given_port_and_no_orphan_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    port = _free_port()
    started = _cli("start", "--port", str(port), "--data", str(tmp_path / "ch"))
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"http://127.0.0.1:{port}"
    supervisor = int((tmp_path / "ch" / PID_FILE).read_text())
    os.kill(supervisor, signal.SIGKILL)
    # The server's stdin pipe closes with its holder, so the server stops by itself.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _answers(f"http://127.0.0.1:{port}"):
        time.sleep(0.2)
    assert not _answers(f"http://127.0.0.1:{port}")
    assert _cli("status", "--data", str(tmp_path / "ch")).returncode == 3


def test_a_taken_port_fails_with_the_log_and_the_fix(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = LocalClickHouseServer(tmp_path / "ch", port=port)
        with pytest.raises(ClickHouseServerError) as raised:
            server.start()
    message = str(raised.value)
    assert "exited with code" in message and "--port" in message
    assert str(tmp_path / "ch") in message
