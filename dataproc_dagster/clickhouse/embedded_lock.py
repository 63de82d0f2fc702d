"""A cross-process lock on an embedded ClickHouse (chDB) directory.

chDB lets only one process open a directory at a time; a second one fails to start. Steps
therefore take this lock (an ``flock`` on ``<dir>.lock``) before opening the engine and release
it when they close it. Inside one process the lock is re-entrant, because several clients on
the same directory in one process are fine for chDB.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dataproc_dagster.core.errors import LockTimeoutError

_POLL_SECONDS = 0.1
# A waiting step says so when the wait starts and then every this many seconds.
REPORT_SECONDS = 30.0
# A framework logger: captured into the run's event log inside a run (dagster.yaml).
_log = logging.getLogger("dataproc_dagster.clickhouse")
_state_guard = threading.Lock()
_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, refcount) held by this process


def lock_path_for(directory: str | os.PathLike[str]) -> Path:
    """The lock file that guards ``directory``."""
    path = Path(directory).resolve()
    return path.with_name(path.name + ".lock")


def read_holder(lock_file: Path) -> str:
    """Describe who holds the lock, from what the holder wrote into the lock file."""
    try:
        info = json.loads(lock_file.read_text() or "{}")
    except (OSError, ValueError):
        return "an unknown process"
    if not info:
        return "an unknown process"
    return ", ".join(f"{key} {value}" for key, value in info.items())


def _report_wait(
    directory: str | os.PathLike[str], lock_file: Path, waited: float, timeout: float
) -> None:
    holder = read_holder(lock_file)
    if waited == 0:
        _log.info(
            "waiting for the embedded ClickHouse directory %s, held by %s (waiting up to %.0f s)",
            directory,
            holder,
            timeout,
        )
    else:
        _log.info(
            "still waiting for the embedded ClickHouse directory %s after %.0f s, held by %s "
            "(waiting up to %.0f s)",
            directory,
            waited,
            holder,
            timeout,
        )


@contextmanager
def embedded_directory_lock(
    directory: str | os.PathLike[str], *, timeout: float, holder: dict[str, str] | None = None
) -> Iterator[None]:
    """Hold the lock on ``directory`` for the block, waiting up to ``timeout`` seconds.

    Args:
        directory: The chDB data directory.
        timeout: Seconds to wait for another process to release it.
        holder: What to record about this holder (run id, step), shown to waiters.

    Raises:
        LockTimeoutError: When the wait times out; the message says who holds it.
    """
    lock_file = lock_path_for(directory)
    key = str(lock_file)
    with _state_guard:
        if key in _held:
            fd, count = _held[key]
            _held[key] = (fd, count + 1)
            reentrant = True
        else:
            reentrant = False
    if not reentrant:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        started = time.monotonic()
        deadline = started + timeout
        next_report = started
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now >= next_report and now < deadline:
                    waited = 0.0 if next_report == started else now - started
                    _report_wait(directory, lock_file, waited, timeout)
                    next_report = now + REPORT_SECONDS
                if now >= deadline:
                    os.close(fd)
                    raise LockTimeoutError(
                        f"the embedded ClickHouse directory stayed locked for {timeout:.0f} s "
                        f"by {read_holder(lock_file)}",
                        source=str(directory),
                        fix="wait for that run to finish, raise CLICKHOUSE_LOCK_TIMEOUT, or stop "
                        "the process holding it",
                    ) from None
                time.sleep(_POLL_SECONDS)
        info = {"pid": str(os.getpid()), **(holder or {})}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        with _state_guard:
            _held[key] = (fd, 1)
    try:
        yield
    finally:
        with _state_guard:
            fd, count = _held[key]
            if count > 1:
                _held[key] = (fd, count - 1)
            else:
                del _held[key]
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
