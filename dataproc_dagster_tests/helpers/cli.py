"""Running the `dagster` and `dg` command lines in tests, on a temporary instance and data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def dagster_executable() -> str:
    """The `dagster` command of the running virtual environment."""
    return str(Path(sys.executable).parent / "dagster")


def dg_executable() -> str:
    """The `dg` command of the running virtual environment."""
    return str(Path(sys.executable).parent / "dg")


def cli_env(data_dir: Path, dagster_home: Path) -> dict[str, str]:
    """Environment for a CLI run: its own DAGSTER_HOME (created) and DATAPROC_DATA_DIR."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # CLICKHOUSE_URL passes through: the data_dir fixture removes it, the clickhouse fixture sets
    # it to the local server on the server backend.
    return dict(os.environ, DATAPROC_DATA_DIR=str(data_dir), DAGSTER_HOME=str(dagster_home))


def job_execute_command(job: str, config: Path | None = None) -> list[str]:
    """`dagster job execute -m dataproc_dagster -j JOB [-c CONFIG]`."""
    command = [dagster_executable(), "job", "execute", "-m", "dataproc_dagster", "-j", job]
    return [*command, "-c", str(config)] if config is not None else command


def run_dagster(
    arguments: list[str],
    data_dir: Path,
    dagster_home: Path,
    *,
    extra_env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a `dagster ...` or `dg ...` command from the repository root and capture its output."""
    return subprocess.run(
        arguments,
        cwd=REPO,
        env={**cli_env(data_dir, dagster_home), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
