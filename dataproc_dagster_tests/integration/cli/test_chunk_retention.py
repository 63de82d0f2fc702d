"""Chunk folders of runs: the retention rule, ``./run.sh cleanup_chunks`` and the space that
``./run.sh check`` reports."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from dataproc_dagster.cli.chunks import main
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.integrity import checks as integrity

DAY = 86_400


def _folder(runs: Path, run_id: str, days_old: float, size: int = 1000) -> Path:
    folder = runs / run_id / "orders__extract"
    folder.mkdir(parents=True)
    chunk = folder / "part-00000.arrow"
    chunk.write_bytes(b"x" * size)
    old = time.time() - days_old * DAY
    for path in (chunk, folder, folder.parent):
        os.utime(path, (old, old))
    return folder.parent


def _run(instance: DagsterInstance, run_id: str, status: DagsterRunStatus, **tags: str) -> None:
    instance.add_run(DagsterRun(job_name="orders", run_id=run_id, status=status, tags=tags))


def test_cleanup_applies_the_retention_rule(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    runs = get_settings().runs_dir
    resumed = _folder(runs, "run-resumed", 0.1)
    fresh = _folder(runs, "run-failed-today", 0.1)
    old = _folder(runs, "run-failed-long-ago", 9)
    running = _folder(runs, "run-still-going", 9)
    with DagsterInstance.get() as instance:
        _run(instance, "run-resumed", DagsterRunStatus.FAILURE)
        _run(
            instance,
            "run-resumed-again",
            DagsterRunStatus.SUCCESS,
            **{"dagster/parent_run_id": "run-resumed", "dagster/root_run_id": "run-resumed"},
        )
        _run(instance, "run-failed-today", DagsterRunStatus.FAILURE)
        _run(instance, "run-failed-long-ago", DagsterRunStatus.FAILURE)
        _run(instance, "run-still-going", DagsterRunStatus.STARTED)

    assert main(["--dry-run"]) == 0
    assert all(p.exists() for p in (resumed, fresh, old, running))
    dry = capsys.readouterr().out
    assert (
        "would remove run-resumed (1000 B): re-executed successfully by run run-resumed-again"
        in dry
    )

    assert main([]) == 0
    out = capsys.readouterr().out
    assert not resumed.exists() and not old.exists()
    assert fresh.exists() and running.exists()
    assert "removed      run-failed-long-ago (1000 B): older than 7 days" in out
    assert "kept         run-still-going (1000 B): its run is still queued or running" in out
    assert "kept         run-failed-today (1000 B): kept for resume, 6.9 more days" in out
    assert "4 run folder(s)" in out and "freed 2.0 KB (2 folder(s)), 2.0 KB kept" in out


def test_check_reports_the_space_and_expired_folders(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _folder(runs, "a", 1, size=3 * 1024 * 1024)
    ok = integrity.check_chunk_space(runs, 7)
    assert ok.status == integrity.PASSED
    assert ok.summary == f"1 run folder(s), 3.0 MB in {runs}"
    _folder(runs, "b", 8)
    late = integrity.check_chunk_space(runs, 7)
    assert late.status == integrity.WARNING
    assert late.metadata["expired"] == ["b"] and "./run.sh cleanup_chunks" in late.fix
