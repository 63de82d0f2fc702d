"""Create the Dagster instance's storage once, before runs use it concurrently.

Dagster creates its SQLite storage under ``DAGSTER_HOME`` on first use; runs started at the same
moment on a never-used folder race to create the same tables (``table run_tags already
exists``). ``./run.sh`` therefore runs ``python -m dataproc_dagster.cli.instance_setup`` before it
starts Dagster: under a file lock, the first caller creates (or migrates) the storage, and a
marker file lets every later call return at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from pathlib import Path

import dagster
from dagster import DagsterInstance

from dataproc_dagster.core.errors import ConfigError

MARKER = ".dataproc-storage-ready"
LOCK = ".dataproc-storage.lock"


def prepare_instance(home: Path | str | None = None) -> bool:
    """Create or migrate the storage of the instance in ``home`` (default ``DAGSTER_HOME``).

    Returns:
        True when this call prepared it, False when it was ready already.

    Raises:
        ConfigError: When ``DAGSTER_HOME`` is not set or is not a folder.
    """
    folder = Path(home or os.environ.get("DAGSTER_HOME") or "")
    if not str(folder) or (folder.exists() and not folder.is_dir()):
        raise ConfigError(
            f"DAGSTER_HOME must name a folder (got {str(folder)!r})",
            source="DAGSTER_HOME",
            fix="export DAGSTER_HOME=$PWD/.dagster_home (./run.sh does this)",
        )
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    # A new Dagster version or other instance settings (e.g. Postgres storage) prepare again.
    settings = folder / "dagster.yaml"
    config = settings.read_bytes() if settings.is_file() else b""
    # The Postgres URL is part of the settings too: another database is prepared again.
    config += os.environ.get("DAGSTER_POSTGRES_URL", "").encode()
    stamp = f"{dagster.__version__} {hashlib.sha256(config).hexdigest()[:16]}"
    if _ready(marker, stamp):
        return False
    with open(folder / LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait here until the storage exists
        if _ready(marker, stamp):
            return False
        previous = os.environ.get("DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(folder.resolve())
        try:
            with DagsterInstance.get() as instance:
                instance.upgrade(print_fn=None)
        finally:
            if previous is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = previous
        marker.write_text(stamp)
    return True


def _ready(marker: Path, stamp: str) -> bool:
    try:
        return marker.read_text() == stamp
    except OSError:
        return False


def main() -> int:
    """Prepare ``$DAGSTER_HOME``; print one line when it was created or migrated."""
    try:
        if prepare_instance():
            print(f"==> prepared the Dagster instance storage in {os.environ['DAGSTER_HOME']}")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
