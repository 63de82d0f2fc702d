"""Benchmark: ClickHouse -> transform -> ClickHouse as a Dagster job vs. a raw insert.

Run with ``./run.sh bench`` (or ``python -m dataproc_dagster_tests.performance.bench_pipeline
[--sizes 1000000 10000000] [--backend embedded|server] [--transformer pandas|arrow]``).
For each size it builds a realistic 10-column source table, then, each in its own process
so that memory figures are clean:

- runs the pipeline job (extract -> transform -> load, mode ``replace``) and reads each step's
  rows, seconds and peak memory from the step metadata;
- inserts the same rows with a plain ``clickhouse-connect`` ``insert_df`` of the whole frame;
- copies them inside the engine (``INSERT INTO dst SELECT * FROM src``, no Python): the
  physical limit of any pipeline on this machine.

It prints a table; the figures that count are the throughput ratio pipeline / raw insert and
the pipeline's share of the engine-only copy. On a shared machine wall times move with the
load, so CPU seconds (all threads of the process, the engine's included) are printed too.
``--backend server`` runs against the ClickHouse server of ``CLICKHOUSE_URL`` instead of the
embedded engine.
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


def _transform_arrow(table: Any) -> Any:
    """The same logic on Arrow tables (``create_transformer(..., arrow=True)``)."""
    import pyarrow.compute as pc

    discount = pc.fill_null(table.column("discount"), 0.0)
    net = pc.round(pc.multiply(table.column("amount"), pc.subtract(1.0, discount)), 2)
    large = pc.greater_equal(pc.fill_null(table.column("quantity"), 0), 10)
    return table.append_column("net_amount", net).append_column("large_order", large)


def backend_url(data_dir: str, backend: str) -> str:
    """An embedded engine in ``data_dir``, or the server of ``CLICKHOUSE_URL``."""
    if backend == "embedded":
        return f"chdb://{Path(data_dir) / 'clickhouse'}"
    url = os.environ.get("CLICKHOUSE_URL", "")
    if not url.startswith(("http://", "https://")):
        raise SystemExit("--backend server needs CLICKHOUSE_URL=http(s)://host:port")
    return url


def _client(data_dir: str, backend: str) -> Any:
    from dataproc_dagster.clickhouse.resource import ClickHouseResource

    connection = ClickHouseResource(url=backend_url(data_dir, backend)).connection
    return connection._open_embedded() if connection.is_embedded else connection._open_server()


def _run_pipeline(data_dir: str, backend: str, arrow: bool = False) -> dict[str, Any]:
    os.environ["DATAPROC_DATA_DIR"] = data_dir
    os.environ["CLICKHOUSE_URL"] = backend_url(data_dir, backend)
    from dataproc_dagster import (
        create_clickhouse_extractor,
        create_clickhouse_loader,
        create_etl_pipeline,
        create_transformer,
    )
    from dataproc_dagster.clickhouse.resource import ClickHouseResource
    from dataproc_dagster.core.settings import get_settings

    pipeline = create_etl_pipeline(
        "bench_pipeline",
        extractor=create_clickhouse_extractor("SELECT * FROM bench_src"),
        transformer=create_transformer(
            _transform_arrow if arrow else _transform, name="net_amount", arrow=arrow
        ),
        loader=create_clickhouse_loader("bench_dst", mode="replace", order_by=["id"]),
    )
    resource = ClickHouseResource.from_settings(get_settings())
    resource.command("DROP TABLE IF EXISTS bench_dst SYNC")
    startup_mb = psutil.Process().memory_info().rss / 1e6
    started, cpu = time.perf_counter(), time.process_time()
    result = pipeline.execute_in_process(resources={"clickhouse": resource})
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result.success
    steps: dict[str, Any] = {}
    for event in result.all_events:
        meta = event.event_specific_data.metadata if event.is_successful_output else {}  # type: ignore[union-attr]
        if "rows" in meta:  # the pipeline's steps, not the asset checks
            # Step keys are <pipeline>__etl.<pipeline>__<step>.
            steps[event.step_key.rsplit(".", 1)[-1].split("__", 1)[1]] = {
                "rows": meta["rows"].value,
                "seconds": meta["seconds"].value,
                "peak_mb": meta["peak_memory_mb"].value,
            }
    rows = resource.query_rows("SELECT count() FROM bench_dst")[0][0]
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "steps": steps, "startup_mb": startup_mb}


def _run_raw(data_dir: str, backend: str) -> dict[str, Any]:
    client = _client(data_dir, backend)
    frame = client.query_df("SELECT * FROM bench_src")
    client.command("DROP TABLE IF EXISTS bench_raw SYNC")
    client.command("CREATE TABLE bench_raw AS bench_src")
    psutil.Process()  # warm
    started, cpu = time.perf_counter(), time.process_time()
    client.insert_df("bench_raw", frame)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rows = client.query("SELECT count() FROM bench_raw").result_rows[0][0]
    client.command("DROP TABLE bench_raw SYNC")
    peak = psutil.Process().memory_info().rss / 1e6
    client.close()
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "rss_mb": peak}


def _run_copy(data_dir: str, backend: str) -> dict[str, Any]:
    """The engine copies the table itself: the physical limit of any pipeline here."""
    client = _client(data_dir, backend)
    client.command("DROP TABLE IF EXISTS bench_copy SYNC")
    client.command("CREATE TABLE bench_copy AS bench_src")
    started, cpu = time.perf_counter(), time.process_time()
    client.command("INSERT INTO bench_copy SELECT * FROM bench_src")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rows = client.query("SELECT count() FROM bench_copy").result_rows[0][0]
    client.command("DROP TABLE bench_copy SYNC")
    client.close()
    return {"seconds": seconds, "cpu": cpu, "rows": rows}


def _prepare(data_dir: str, backend: str, rows: int) -> None:
    client = _client(data_dir, backend)
    client.command("DROP TABLE IF EXISTS bench_src SYNC")
    client.command(SOURCE_SQL)
    client.command(FILL_SQL, parameters={"rows": rows})
    # One part, no merge left pending: otherwise the next process to open the engine (the
    # pipeline) merges the source table in the background, and its CPU and memory figures
    # grow with the source instead of with its own work.
    client.command("OPTIMIZE TABLE bench_src FINAL")
    client.close()


def _child(kind: str, data_dir: str, args: argparse.Namespace, rows: int) -> dict[str, Any]:
    module = "dataproc_dagster_tests.performance.bench_pipeline"
    command = [sys.executable, "-m", module, "--child", kind, "--data-dir", data_dir]
    command += ["--rows", str(rows), "--backend", args.backend, "--transformer", args.transformer]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--backend",
        choices=["embedded", "server"],
        default="embedded",
        help="embedded chDB in a temporary folder, or the server of CLICKHOUSE_URL",
    )
    parser.add_argument(
        "--transformer",
        choices=["pandas", "arrow"],
        default="pandas",
        help="the transform step gets DataFrames (default) or Arrow tables",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--child", choices=["prepare", "pipeline", "raw", "copy"])
    parser.add_argument("--data-dir")
    parser.add_argument("--rows", type=int, default=0)
    args = parser.parse_args(argv)
    if args.child:
        if args.child == "prepare":
            _prepare(args.data_dir, args.backend, args.rows)
            print(json.dumps({}))
        else:
            if args.child == "pipeline":
                arrow = args.transformer == "arrow"
                print(json.dumps(_run_pipeline(args.data_dir, args.backend, arrow)))
            else:
                runner = _run_raw if args.child == "raw" else _run_copy
                print(json.dumps(runner(args.data_dir, args.backend)))
        return 0

    print(
        f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.processor() or platform.machine()}, python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}, backend {args.backend}, "
        f"{args.transformer} transformer"
    )
    header = (
        f"{'rows':>11} | {'pipeline s':>10} | {'rows/s':>9} | {'raw insert s':>12} | "
        f"{'ratio':>5} | {'engine copy s':>13} | {'share':>5} | "
        "step s extract / transform / load | start-up MB | peak MB extract / transform / load"
    )
    print(header)
    print("-" * len(header))
    peaks: dict[int, dict[str, float]] = {}
    cpu_lines = []
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dataproc-bench-") as data_dir:
        for rows in args.sizes:
            _child("prepare", data_dir, args, rows)
            pipe = _child("pipeline", data_dir, args, rows)
            raw = _child("raw", data_dir, args, rows)
            copy = _child("copy", data_dir, args, rows)
            assert pipe["rows"] == raw["rows"] == copy["rows"] == rows, (pipe, raw, copy)
            steps = pipe["steps"]
            transform = next(v for k, v in steps.items() if k.startswith("transform"))
            by_step = {"extract": steps["extract"], "transform": transform, "load": steps["load"]}
            peaks[rows] = {k: v["peak_mb"] for k, v in by_step.items()}
            figures.append(
                {
                    "rows": rows,
                    "seconds": pipe["seconds"],
                    "raw_seconds": raw["seconds"],
                    "copy_seconds": copy["seconds"],
                    "startup_mb": pipe["startup_mb"],
                    "steps": by_step,
                }
            )
            print(
                f"{rows:>11,} | {pipe['seconds']:>10.1f} | {rows / pipe['seconds']:>9,.0f} | "
                f"{raw['seconds']:>12.1f} | {raw['seconds'] / pipe['seconds']:>5.2f} | "
                f"{copy['seconds']:>13.1f} | {copy['seconds'] / pipe['seconds']:>5.2f} | "
                + " / ".join(f"{v['seconds']:.1f}" for v in by_step.values()).ljust(33)
                + f" | {pipe['startup_mb']:>11,.0f} | "
                + " / ".join(f"{v:,.0f}" for v in peaks[rows].values())
            )
            cpu_lines.append(
                f"{rows:>11,} | CPU s: pipeline {pipe['cpu']:.1f}, raw insert {raw['cpu']:.1f} "
                f"(ratio {raw['cpu'] / pipe['cpu']:.2f}), engine copy {copy['cpu']:.1f} "
                f"(share {copy['cpu'] / pipe['cpu']:.2f})"
            )
    print(
        "ratio = raw insert s / pipeline s (> 1: the pipeline is faster); share = engine copy s /"
    )
    print("pipeline s (1.0 = as fast as the engine copying the table itself)")
    print("\n".join(cpu_lines))
    print(
        "start-up MB: the pipeline process after loading its code, before the run (each "
        "step's peak target: <= start-up + 300 MB)"
    )
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        growth = {k: peaks[large][k] / peaks[small][k] for k in peaks[small]}
        print(
            f"peak memory growth {small:,} -> {large:,} rows: "
            + ", ".join(f"{k} x{v:.2f}" for k, v in growth.items())
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"backend": args.backend, "sizes": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
