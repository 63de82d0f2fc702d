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


def test_run_sh_job_prints_a_failure_once_with_its_fix(tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(
        "ops:\n"
        "  http_to_clickhouse__extract:\n"
        "    config: {url: 'http://127.0.0.1:9/nothing', retry: {max_attempts: 1}}\n"
        "  http_to_clickhouse__load:\n"
        "    config: {table: t}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CLICKHOUSE_"))}
    env.update(DAGSTER_HOME=str(tmp_path / "home"), DATAPROC_DATA_DIR=str(tmp_path / "data"))
    env.pop("LOG_LEVEL", None)
    done = subprocess.run(
        [str(REPO / "run.sh"), "job", "http_to_clickhouse", str(config)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert output.count("Connection refused") == 1, output
    assert "Stack Trace" not in output and "Traceback" not in output
    assert "Fix: check that the server is reachable" in output
    assert "http_to_clickhouse__extract: failed after " in output
    assert len(output.splitlines()) < 20, output
