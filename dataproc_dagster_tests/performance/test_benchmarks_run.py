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
    # Pipeline and HTTP benchmarks on the embedded engine and a local ClickHouse server, with
    # the summary putting them side by side.
    "run_benchmarks": (
        [
            *("--sizes", "20000", "40000", "--pages", "20", "--job-pages", "20"),
            *("--launch-pages", "0", "--delay", "0.001", "--only-clickhouse"),
            *("--store-sizes", "20000"),
        ],
        [
            "local ClickHouse server for the benchmarks",
            "backend embedded, pandas transformer",
            "backend server, pandas transformer",
            "speed-up at concurrency 8",
            "our overhead",
            "side by side",
            "embedded |      40,000 |",
            "server   |      40,000 |",
            "embedded | peak growth 20,000 -> 40,000 rows",
            "embedded |     2,000 |",
            "server   |     2,000 |",
            "S3 API server (moto) for the chunk store",
            "server+s3 |      20,000 |",
            "20,000 rows: local",
            "s3 / local x",
            # bench_publish at its small sizes (--sizes below 1M rows)
            "publish benchmark, backend embedded",
            "publish benchmark, backend server",
            "Publish: an append of 1,000 rows into one partition",
            "embedded |        100 |",
            "server   |      1,000 |",
        ],
    ),
    "bench_pipeline": (
        ["--sizes", "20000", "--transformer", "arrow"],
        ["ratio", "20,000 |", "engine copy", "share", "arrow transformer"],
    ),
    "bench_metabase": (["--rows", "3000", "--repeat", "1"], ["fastest path", "baseline"]),
    # Appends by partition count of the target and by past loads in the ledger, both backends.
    "bench_publish": (
        [*("--partitions", "3", "30", "--ledger", "10", "200"), "--rows", "100", "--repeat", "1"],
        [
            "local ClickHouse server for the publish benchmark",
            "append of 100 rows into one partition",
            "append of 100 rows with past loads in the ledger",
            "embedded |         30 |",
            "server   |         30 |",
            "embedded |        200 |",
            "server   |        200 |",
        ],
    ),
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
