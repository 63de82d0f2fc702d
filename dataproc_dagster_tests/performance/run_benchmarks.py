"""``./run.sh bench``: every benchmark, the ClickHouse ones on both backends, and a summary.

Runs ``bench_pipeline``, ``bench_http`` and ``bench_publish`` against the embedded engine and
against a ClickHouse server (``CLICKHOUSE_URL`` when it names an ``http(s)://`` server,
otherwise a local server started from the chdb package for the run and stopped after it), then
``bench_metabase`` and ``bench_migrations``, and ends with tables putting the two backends side
by side: rows/s, the ratios to the references measured in the same run, peak MB per step, and
the seconds one load's publish takes as the target's partitions and the ledger grow.
``--sizes`` below 1,000,000 rows (a quick run) also runs ``bench_publish`` at small sizes
(:data:`PUBLISH_SMALL`).

Usage: ``python -m dataproc_dagster_tests.performance.run_benchmarks [--backend both]
[--sizes 1000000 10000000] [--job-pages 5000] [--launch-pages 1000] [--pages 1000]
[--delay 0.02] [--only-clickhouse]``. Figures are printed; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PACKAGE = "dataproc_dagster_tests.performance"
LABELS = {"embedded": "embedded", "server": "server"}
# bench_publish: partition counts of the target and past loads in the ledger. The full sizes
# are the issue's; a quick run (--sizes below SMALL_ROWS) takes the small ones.
PUBLISH_FULL = ["--partitions", "10", "1000", "3000", "--ledger", "1000", "100000", "500000"]
PUBLISH_SMALL = [*("--partitions", "10", "100", "--ledger", "100", "1000"), "--repeat", "1"]
SMALL_ROWS = 1_000_000


@contextlib.contextmanager
def server_url(backends: list[str], workdir: Path) -> Iterator[str | None]:
    """The server to benchmark: ``CLICKHOUSE_URL``, a local one started here, or none."""
    given = os.environ.get("CLICKHOUSE_URL", "")
    if "server" not in backends:
        yield None
    elif given.startswith(("http://", "https://")):
        yield given
    else:
        from dataproc_dagster.clickhouse.server import local_clickhouse_server

        with local_clickhouse_server(workdir / "clickhouse-server", port=0) as url:
            print(f"==> local ClickHouse server for the benchmarks at {url}", flush=True)
            yield url


def run(module: str, arguments: list[str], url: str | None) -> None:
    """Run one benchmark module with its output on the terminal."""
    env = dict(os.environ)
    if url is None:
        env.pop("CLICKHOUSE_URL", None)
    else:
        env["CLICKHOUSE_URL"] = url
    print(f"\n==> {PACKAGE}.{module} {' '.join(arguments)}", flush=True)
    subprocess.run([sys.executable, "-m", f"{PACKAGE}.{module}", *arguments], env=env, check=True)


def pipeline_rows(results: dict[str, dict[str, Any]]) -> list[str]:
    """The summary lines of the ClickHouse -> transform -> ClickHouse benchmark."""
    header = (
        f"{'backend':<8} | {'rows':>11} | {'pipeline s':>10} | {'rows/s':>9} | "
        f"{'x raw insert':>12} | {'engine copy share':>17} | "
        f"{'step s extract / transform / load':<33} | peak MB extract / transform / load"
    )
    lines = [header, "-" * len(header)]
    for backend, figures in results.items():
        for size in figures["sizes"]:
            steps = size["steps"].values()
            lines.append(
                f"{LABELS[backend]:<8} | {size['rows']:>11,} | {size['seconds']:>10.1f} | "
                f"{size['rows'] / size['seconds']:>9,.0f} | "
                f"{size['raw_seconds'] / size['seconds']:>12.2f} | "
                f"{size['copy_seconds'] / size['seconds']:>17.2f} | "
                + " / ".join(f"{s['seconds']:.1f}" for s in steps).ljust(33)
                + " | "
                + " / ".join(f"{s['peak_mb']:,.0f}" for s in steps)
            )
        sizes = figures["sizes"]
        if len(sizes) >= 2:
            small, large = sizes[0], sizes[-1]
            growth = ", ".join(
                f"{name} x{large['steps'][name]['peak_mb'] / step['peak_mb']:.2f}"
                for name, step in small["steps"].items()
            )
            lines.append(
                f"{LABELS[backend]:<8} | peak growth {small['rows']:,} -> {large['rows']:,} "
                f"rows: {growth} (target <= x1.10)"
            )
    return lines


def http_rows(results: dict[str, dict[str, Any]]) -> list[str]:
    """The summary lines of the launched HTTP job against its references."""
    header = (
        f"{'backend':<8} | {'records':>9} | {'job s':>7} | {'rec/s':>8} | {'bare loop s':>11} | "
        f"{'floor s':>7} | {'job = floor + Nx bare':>21} | {'job / bare':>10} | job peak MB"
    )
    lines = [header, "-" * len(header)]
    for backend, figures in results.items():
        for launched in figures["runs"]:
            job, bare, floor = launched["job"][0], launched["bare"][0], launched["floor"][0]
            lines.append(
                f"{LABELS[backend]:<8} | {launched['records']:>9,} | {job:>7.2f} | "
                f"{launched['records'] / job:>8,.0f} | {bare:>11.2f} | {floor:>7.2f} | "
                f"{(job - floor) / bare:>21.2f} | {job / bare:>10.2f} | "
                f"{launched['job'][2]:,.0f}"
            )
    return lines


def publish_rows(results: dict[str, dict[str, Any]]) -> list[str]:
    """The summary lines of the publish benchmark: per partition count, then per ledger size."""

    def ratios(row: dict[str, Any], base: dict[str, Any]) -> str:
        return f"{row['median'] / base['median']:.2f} / {row['min'] / base['min']:.2f}"

    header = (
        f"{'backend':<8} | {'partitions':>10} | {'load s':>7} | {'x fewest':>11} | "
        f"{'plain INSERT SELECT s':>21}"
    )
    lines = [header, "-" * len(header)]
    for backend, figures in results.items():
        for row in figures["partitions"]:
            lines.append(
                f"{LABELS[backend]:<8} | {row['partitions']:>10,} | {row['median']:>7.3f} | "
                f"{ratios(row, figures['partitions'][0]):>11} | {row['plain']:>21.3f}"
            )
    header = f"{'backend':<8} | {'past loads':>10} | {'load s':>7} | {'x fewest':>11}"
    lines += ["", header, "-" * len(header)]
    for backend, figures in results.items():
        for row in figures["ledger"]:
            lines.append(
                f"{LABELS[backend]:<8} | {row['past']:>10,} | {row['median']:>7.3f} | "
                f"{ratios(row, figures['ledger'][0]):>11}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["embedded", "server", "both"], default="both")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--transformer", choices=["pandas", "arrow"], default="pandas")
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--job-pages", type=int, default=5000)
    parser.add_argument("--launch-pages", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument(
        "--only-clickhouse",
        action="store_true",
        help="skip the Metabase and migrations benchmarks",
    )
    args = parser.parse_args(argv)
    backends = ["embedded", "server"] if args.backend == "both" else [args.backend]
    pipeline: dict[str, dict[str, Any]] = {}
    http: dict[str, dict[str, Any]] = {}
    publish: dict[str, dict[str, Any]] = {}
    small = max(args.sizes, default=0) < SMALL_ROWS
    with tempfile.TemporaryDirectory(prefix="dataproc-bench-") as tmp:
        workdir = Path(tmp)
        with server_url(backends, workdir) as url:
            for backend in backends:
                target = url if backend == "server" else None
                out = workdir / f"pipeline-{backend}.json"
                sizes = [str(size) for size in args.sizes]
                arguments = ["--backend", backend, "--transformer", args.transformer]
                run("bench_pipeline", [*arguments, "--json", str(out), "--sizes", *sizes], target)
                pipeline[backend] = json.loads(out.read_text())
            for backend in backends:
                target = url if backend == "server" else None
                out = workdir / f"http-{backend}.json"
                arguments = ["--backend", backend, "--json", str(out), "--delay", str(args.delay)]
                arguments += ["--pages", str(args.pages), "--job-pages", str(args.job_pages)]
                arguments += ["--launch-pages", str(args.launch_pages)]
                if backend != backends[0]:
                    arguments.append("--job-only")  # the extract alone does not touch ClickHouse
                run("bench_http", arguments, target)
                http[backend] = json.loads(out.read_text())
            for backend in backends:
                target = url if backend == "server" else None
                out = workdir / f"publish-{backend}.json"
                arguments = ["--backend", backend, "--json", str(out)]
                run("bench_publish", arguments + (PUBLISH_SMALL if small else PUBLISH_FULL), target)
                (publish[backend],) = json.loads(out.read_text())
        if not args.only_clickhouse:
            run("bench_metabase", [], None)
            run("bench_migrations", [], None)
    print("\n==> summary: the embedded engine and a ClickHouse server side by side")
    print(f"ClickHouse -> transform ({args.transformer}) -> ClickHouse, mode replace")
    print("\n".join(pipeline_rows(pipeline)))
    print(
        "x raw insert = raw whole-frame insert_df s / pipeline s (target >= 1.5 at 10M rows, and "
        ">= 1M rows/s); engine copy share = INSERT ... SELECT inside the engine s / pipeline s"
    )
    print("\nHTTP -> ClickHouse: http_to_clickhouse launched with `dagster job execute`")
    print("\n".join(http_rows(http)))
    print(
        "floor = a trivial 2-op in-process Dagster job launched alike; bare loop = httpx x8 -> "
        "DataFrame; targets: job <= floor + 1.1x bare at 100,000 records, job <= 1.2x bare at "
        "500,000"
    )
    rows = next(iter(publish.values()))["rows"] if publish else 0
    print(f"\nPublish: an append of {rows:,} rows into one partition (bench_publish)")
    print("\n".join(publish_rows(publish)))
    print(
        "load s = median; x fewest = median / min, each against the fewest partitions (past "
        "loads); targets: 1,000 partitions within 2x of 10, 500,000 past loads within 1.2x of "
        "1,000"
    )
    print(
        "peak MB on the server backend count the pipeline's process only, not the server's. "
        "Timings move with the machine's load: compare ratios within one run."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
