"""An invalid setting: `./run.sh job` prints the message with its fix, no traceback first."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dataproc_dagster_tests.helpers.cli import REPO


def test_run_sh_job_with_an_invalid_setting_prints_one_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CLICKHOUSE_"))}
    env.update(DAGSTER_HOME=str(tmp_path / "home"), CHUNK_ROWS="abc")
    done = subprocess.run(
        [str(REPO / "run.sh"), "job", "penguins"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr, done.stderr
    [line] = [x for x in done.stderr.splitlines() if x.strip()]
    assert line.startswith("error: [environment / .env] invalid settings: CHUNK_ROWS")
    assert "Fix: " in line
