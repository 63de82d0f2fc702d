"""The embedded-directory lock: waits, times out naming the holder, re-entrant in one process."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataproc_dagster.clickhouse import embedded_lock
from dataproc_dagster.clickhouse.embedded_lock import embedded_directory_lock, lock_path_for
from dataproc_dagster.core.errors import LockTimeoutError

HOLD = """
import sys, time
from dataproc_dagster.clickhouse.embedded_lock import embedded_directory_lock
with embedded_directory_lock(sys.argv[1], timeout=5, holder={"run": "run-123", "step": "load"}):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(directory: Path, seconds: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_timeout_names_who_holds_the_directory(tmp_path: Path) -> None:
    holder = _holder(tmp_path / "ch", 10)
    try:
        with (
            pytest.raises(LockTimeoutError) as raised,
            embedded_directory_lock(tmp_path / "ch", timeout=0.5),
        ):
            pass
        message = str(raised.value)
        assert f"pid {holder.pid}" in message and "run-123" in message and "step load" in message
        assert "CLICKHOUSE_LOCK_TIMEOUT" in message
    finally:
        holder.kill()
        holder.wait()


def test_waiter_gets_the_lock_when_the_holder_finishes(tmp_path: Path) -> None:
    holder = _holder(tmp_path / "ch", 1.0)
    started = time.monotonic()
    with embedded_directory_lock(tmp_path / "ch", timeout=30):
        waited = time.monotonic() - started
    holder.wait()
    assert waited > 0.3  # it really waited for the other process
    assert lock_path_for(tmp_path / "ch").read_text() == ""


def test_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    with (
        embedded_directory_lock(tmp_path / "ch", timeout=1),
        embedded_directory_lock(tmp_path / "ch", timeout=1),
    ):
        pass


def test_waiting_is_logged_when_it_starts_and_then_periodically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(embedded_lock, "REPORT_SECONDS", 0.4)
    holder = _holder(tmp_path / "ch", 10)
    try:
        with (
            caplog.at_level(logging.INFO, logger="dataproc_dagster.clickhouse"),
            pytest.raises(LockTimeoutError),
            embedded_directory_lock(tmp_path / "ch", timeout=1.0),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    lines = [r.getMessage() for r in caplog.records if r.name == "dataproc_dagster.clickhouse"]
    assert lines[0].startswith("waiting for the embedded ClickHouse directory")
    assert f"pid {holder.pid}" in lines[0] and "run run-123" in lines[0]
    assert "step load" in lines[0] and "up to 1 s" in lines[0]
    later = lines[1:]
    # One line at the start, then one per REPORT_SECONDS (0.4 s) of a 1 s wait (not one per
    # 0.1 s poll): 2 more, 1 on a machine too busy to poll on time.
    assert 1 <= len(later) <= 2, lines
    assert all(line.startswith("still waiting") and "run-123" in line for line in later)


def test_no_wait_no_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="dataproc_dagster.clickhouse"),
        embedded_directory_lock(tmp_path / "ch", timeout=1),
    ):
        pass
    assert not [r for r in caplog.records if r.name == "dataproc_dagster.clickhouse"]
