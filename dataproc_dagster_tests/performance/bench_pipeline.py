"""Benchmark: ClickHouse -> transform -> ClickHouse as a Dagster job vs. a raw insert.

Run with ``./run.sh bench`` (or ``python -m dataproc_dagster_tests.performance.bench_pipeline
[--sizes 1000000 10000000]``). For each size it builds a realistic 10-column source table in the
embedded ClickHouse, then, each in its own process so that memory figures are clean:

- runs the pipeline job (extract -> transform -> load, mode ``replace``) and reads each step's
  rows, seconds and peak memory from the step metadata;
- inserts the same rows with a plain ``clickhouse-connect`` ``insert_df`` of the whole frame.

It prints a table; the figure that counts is the throughput ratio pipeline / raw insert.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

SOURCE_SQL = """
CREATE TABLE IF NOT EXISTS bench_src (
    id Int64,
    customer_id Int32,
    amount Float64,
    discount Nullable(Float64),
    quantity Nullable(Int64),
    customer String,
    category LowCardinality(String),
    created_at DateTime64(6, 'UTC'),
    note Nullable(String),
    paid Bool
) ENGINE = MergeTree ORDER BY id
"""

FILL_SQL = """
INSERT INTO bench_src
SELECT
    number,
    toInt32(number % 100000),
    round((number % 10007) / 7.0, 2),
    if(number % 5 = 0, NULL, (number % 30) / 100.0),
    if(number % 10 = 0, NULL, toInt64(number % 17)),
    concat('customer-', toString(number % 100000)),
    ['books', 'games', 'garden', 'food', 'tools', 'toys', 'music', 'sports',
     'beauty', 'auto', 'baby', 'pets', 'office', 'home', 'shoes', 'bags', 'tech',
     'travel', 'art', 'health'][1 + number % 20],
    toDateTime64('2024-01-01 00:00:00', 6, 'UTC') + toIntervalSecond(number % 31536000),
    if(number % 3 = 0, NULL, concat('note ', toString(number % 1000))),
    number % 2 = 0
FROM numbers({rows:UInt64})
"""


def _transform(df: Any) -> Any:
    """Per-chunk business logic: net amount and an order-size bucket."""
    net = df["amount"] * (1 - df["discount"].fillna(0))
    df["net_amount"] = net.round(2)
    df["large_order"] = df["quantity"].fillna(0) >= 10
    return df


def _run_pipeline(data_dir: str) -> dict[str, Any]:
    os.environ["DATAPROC_DATA_DIR"] = data_dir
    from dataproc_dagster import (
        create_clickhouse_extractor,
        create_clickhouse_loader,
        create_etl_pipeline,
        create_transformer,
    )
    from dataproc_dagster.resources.clickhouse import ClickHouseResource
    from dataproc_dagster.settings import get_settings

    pipeline = create_etl_pipeline(
        "bench_pipeline",
        extractor=create_clickhouse_extractor("SELECT * FROM bench_src"),
        transformer=create_transformer(_transform, name="net_amount"),
        loader=create_clickhouse_loader("bench_dst", mode="replace", order_by=["id"]),
    )
    resource = ClickHouseResource.from_settings(get_settings())
    resource.command("DROP TABLE IF EXISTS bench_dst SYNC")
    started = time.perf_counter()
    result = pipeline.job.execute_in_process(resources={"clickhouse": resource})
    seconds = time.perf_counter() - started
    assert result.success
    steps: dict[str, Any] = {}
    for event in result.all_events:
        if event.is_successful_output:
            meta = event.event_specific_data.metadata  # type: ignore[union-attr]
            steps[event.step_key.split("__", 1)[1]] = {
                "rows": meta["rows"].value,
                "seconds": meta["seconds"].value,
                "peak_mb": meta["peak_memory_mb"].value,
            }
    rows = resource.query_rows("SELECT count() FROM bench_dst")[0][0]
    return {"seconds": seconds, "rows": rows, "steps": steps}


def _run_raw(data_dir: str) -> dict[str, Any]:
    import clickhouse_connect

    client = clickhouse_connect.get_client(
        interface="chdb", path=str(Path(data_dir) / "clickhouse")
    )
    frame = client.query_df("SELECT * FROM bench_src")
    client.command("DROP TABLE IF EXISTS bench_raw SYNC")
    client.command("CREATE TABLE bench_raw AS bench_src")
    psutil.Process()  # warm
    started = time.perf_counter()
    client.insert_df("bench_raw", frame)
    seconds = time.perf_counter() - started
    rows = client.query("SELECT count() FROM bench_raw").result_rows[0][0]
    client.command("DROP TABLE bench_raw SYNC")
    peak = psutil.Process().memory_info().rss / 1e6
    client.close()
    return {"seconds": seconds, "rows": rows, "rss_mb": peak}


def _prepare(data_dir: str, rows: int) -> None:
    import clickhouse_connect

    client = clickhouse_connect.get_client(
        interface="chdb", path=str(Path(data_dir) / "clickhouse")
    )
    client.command("DROP TABLE IF EXISTS bench_src SYNC")
    client.command(SOURCE_SQL)
    client.command(FILL_SQL, parameters={"rows": rows})
    client.close()


def _child(kind: str, data_dir: str, rows: int) -> dict[str, Any]:
    module = "dataproc_dagster_tests.performance.bench_pipeline"
    command = [sys.executable, "-m", module, "--child", kind, "--data-dir", data_dir]
    command += ["--rows", str(rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--child", choices=["prepare", "pipeline", "raw"])
    parser.add_argument("--data-dir")
    parser.add_argument("--rows", type=int, default=0)
    args = parser.parse_args(argv)
    if args.child:
        if args.child == "prepare":
            _prepare(args.data_dir, args.rows)
            print(json.dumps({}))
        else:
            runner = _run_pipeline if args.child == "pipeline" else _run_raw
            print(json.dumps(runner(args.data_dir)))
        return 0

    print(
        f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    header = (
        f"{'rows':>11} | {'pipeline s':>10} | {'pipeline rows/s':>15} | {'raw insert s':>12} | "
        f"{'raw rows/s':>11} | {'ratio':>5} | peak MB extract / transform / load"
    )
    print(header)
    print("-" * len(header))
    peaks: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="dataproc-bench-") as data_dir:
        for rows in args.sizes:
            _child("prepare", data_dir, rows)
            pipe = _child("pipeline", data_dir, rows)
            raw = _child("raw", data_dir, rows)
            assert pipe["rows"] == rows and raw["rows"] == rows, (pipe["rows"], raw["rows"])
            pipe_rate = rows / pipe["seconds"]
            raw_rate = rows / raw["seconds"]
            steps = pipe["steps"]
            step_peaks = {
                "extract": steps["extract"]["peak_mb"],
                "transform": next(
                    v["peak_mb"] for k, v in steps.items() if k.startswith("transform")
                ),
                "load": steps["load"]["peak_mb"],
            }
            peaks[rows] = step_peaks
            print(
                f"{rows:>11,} | {pipe['seconds']:>10.1f} | {pipe_rate:>15,.0f} | "
                f"{raw['seconds']:>12.1f} | {raw_rate:>11,.0f} | {pipe_rate / raw_rate:>5.2f} | "
                + " / ".join(f"{v:,.0f}" for v in step_peaks.values())
            )
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        growth = {k: peaks[large][k] / peaks[small][k] for k in peaks[small]}
        print(
            f"peak memory growth {small:,} -> {large:,} rows: "
            + ", ".join(f"{k} x{v:.2f}" for k, v in growth.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
