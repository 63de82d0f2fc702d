"""Runs started together on a never-used DAGSTER_HOME do not race in Dagster's storage set-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dataproc_dagster_tests.helpers.cli import REPO


def test_first_runs_started_together_on_a_fresh_home_all_succeed(tmp_path: Path) -> None:
    home = tmp_path / "fresh_home"  # does not exist yet: ./run.sh creates it
    env = dict(os.environ, DAGSTER_HOME=str(home), DATAPROC_DATA_DIR=str(tmp_path / "data"))
    env.pop("CLICKHOUSE_URL", None)
    runs = [
        subprocess.Popen(
            [str(REPO / "run.sh"), "job", "migrate"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
        assert "already exists" not in output
    assert sum("prepared the Dagster instance storage" in o for o in outputs) == 1
    assert (home / "history" / "runs.db").is_file()


def test_prepare_instance_refuses_a_home_that_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "dataproc_dagster.cli.instance_setup"],
        cwd=REPO,
        env=dict(os.environ, DAGSTER_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "DAGSTER_HOME must name a folder" in result.stderr
