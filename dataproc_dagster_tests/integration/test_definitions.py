"""The code location loads: every job resolves, `definitions validate` passes, no engine opens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dataproc_dagster.definitions import build_definitions

REPO = Path(__file__).resolve().parents[2]


def test_every_job_resolves_with_its_resources(data_dir: Path) -> None:
    defs = build_definitions()
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"penguins", "http_to_clickhouse", "metabase_to_clickhouse", "migrate"} <= jobs
    schedules = {s.name: s for s in defs.schedules or []}
    assert schedules["penguins_schedule"].execution_timezone == "UTC"
    assert not (data_dir / "clickhouse").exists()  # building definitions opened no engine


def test_dagster_definitions_validate_passes_without_opening_the_engine(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["DATAPROC_DATA_DIR"] = str(tmp_path / "data")
    env["DAGSTER_HOME"] = str(tmp_path / "home")
    env.pop("CLICKHOUSE_URL", None)
    (tmp_path / "home").mkdir()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-m",
            "dataproc_dagster",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Validation successful" in done.stdout + done.stderr
    assert not (tmp_path / "data" / "clickhouse").exists()
