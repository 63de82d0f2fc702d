"""How long the chunk folders of runs stay under ``<DATAPROC_DATA_DIR>/runs/<run_id>/``.

A successful load removes its run's folder (and the folder of the run it re-executed). A failed
run keeps its chunks so that ``./run.sh resume`` can load them without extracting again. The
rule for a folder left behind:

- its run is still queued or running: kept;
- a re-execution of its run succeeded: removed (nothing is left to resume);
- otherwise: kept for ``CHUNK_RETENTION_DAYS`` (default 7) after its last write, then removed.

The run facts come from the Dagster instance (``cli/chunks.py``); this module only decides and
deletes, so it needs no Dagster.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class RunFolder:
    """The chunk folder of one run.

    Attributes:
        run_id: The folder's name, the run's id.
        path: The folder.
        size_bytes: Bytes of the files under it.
        age_days: Days since the newest file or folder under it changed.
    """

    run_id: str
    path: Path
    size_bytes: int
    age_days: float


@dataclass(frozen=True)
class Decision:
    """What the rule says about one folder, and why."""

    folder: RunFolder
    remove: bool
    reason: str


def run_folders(runs_dir: Path, now: float | None = None) -> list[RunFolder]:
    """The run folders under ``runs_dir``, oldest first (empty when there is none)."""
    if not runs_dir.is_dir():
        return []
    now = time.time() if now is None else now
    found = []
    for path in runs_dir.iterdir():
        if not path.is_dir():
            continue
        size, newest = 0, path.stat().st_mtime
        for item in path.rglob("*"):
            try:
                stat = item.stat()
            except OSError:  # removed meanwhile
                continue
            newest = max(newest, stat.st_mtime)
            size += stat.st_size if item.is_file() else 0
        found.append(RunFolder(path.name, path, size, max(0.0, (now - newest) / SECONDS_PER_DAY)))
    return sorted(found, key=lambda f: -f.age_days)


def decide(
    folders: Iterable[RunFolder],
    *,
    max_age_days: float,
    in_progress: Callable[[str], bool],
    succeeded_reexecution: Callable[[str], str | None],
) -> list[Decision]:
    """Apply the retention rule to ``folders``.

    Args:
        folders: The run folders.
        max_age_days: ``CHUNK_RETENTION_DAYS``.
        in_progress: Whether a run is queued or running.
        succeeded_reexecution: The id of a successful re-execution of a run, or ``None``.
    """
    decisions = []
    for folder in folders:
        if in_progress(folder.run_id):
            decisions.append(Decision(folder, False, "its run is still queued or running"))
            continue
        by = succeeded_reexecution(folder.run_id)
        if by:
            decisions.append(Decision(folder, True, f"re-executed successfully by run {by}"))
        elif folder.age_days >= max_age_days:
            decisions.append(
                Decision(folder, True, f"older than {max_age_days:g} days (CHUNK_RETENTION_DAYS)")
            )
        else:
            left = max_age_days - folder.age_days
            decisions.append(Decision(folder, False, f"kept for resume, {left:.1f} more days"))
    return decisions


def remove(decisions: Iterable[Decision]) -> list[Decision]:
    """Delete the folders the rule removes; the decisions carried out."""
    done = []
    for decision in decisions:
        if decision.remove:
            shutil.rmtree(decision.folder.path, ignore_errors=True)
            done.append(decision)
    return done


def human_size(size_bytes: int) -> str:
    """``42.0 MB``-style size."""
    size = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
