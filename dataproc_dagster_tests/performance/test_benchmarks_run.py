"""The benchmarks of `./run.sh bench` still run and print their tables (tiny sizes; no timing
is asserted here: the figures are read from the full benchmark, see the README)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CASES = {
    "bench_pipeline": (
        ["--sizes", "20000", "40000"],
        ["ratio", "40,000 |", "engine copy", "share", "peak memory growth"],
    ),
    "bench_http": (
        ["--pages", "20", "--job-pages", "20", "--launch-pages", "0", "--delay", "0.001"],
        ["speed-up at concurrency 8", "job / bare loop", "Dagster floor", "our overhead"],
    ),
    "bench_metabase": (["--rows", "3000", "--repeat", "1"], ["fastest path", "baseline"]),
    "bench_migrations": (["--count", "5"], ["up (all pending)", "down 5"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_prints_its_table(name: str, tmp_path: Path) -> None:
    arguments, expected = CASES[name]
    env = dict(os.environ, DATAPROC_DATA_DIR=str(tmp_path / "data"))
    env.pop("CLICKHOUSE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", f"dataproc_dagster_tests.performance.{name}", *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for text in expected:
        assert text in done.stdout, done.stdout[-3000:]
