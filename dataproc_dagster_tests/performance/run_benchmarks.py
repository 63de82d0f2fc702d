"""``./run.sh bench``: every benchmark, the ClickHouse ones on both backends, and a summary.

Runs ``bench_pipeline``, ``bench_http`` and ``bench_publish`` against the embedded engine and
against a ClickHouse server (``CLICKHOUSE_URL`` when it names an ``http(s)://`` server,
otherwise a local server started from the chdb package for the run and stopped after it), then
``bench_metabase`` and ``bench_migrations``, and ends with tables putting the two backends side
by side: rows/s, the ratios to the references measured in the same run, peak MB per step, and
the seconds one load's publish takes as the target's partitions and the ledger grow.
``--sizes`` below 1,000,000 rows (a quick run) also runs ``bench_publish`` at small sizes
(:data:`PUBLISH_SMALL`).

With ``--chunk-store both`` (the default) the pipeline and HTTP benchmarks run again with the
chunks between steps in S3-compatible storage (``CHUNK_STORE``; a local ``moto_server`` started
for the run stands for S3), at ``--store-sizes``, labelled ``<backend>+s3``: the cost of going
multi-machine, as a ratio to the local folder measured in the same run.

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


@contextlib.contextmanager
def s3_chunk_store(wanted: bool, workdir: Path) -> Iterator[dict[str, str] | None]:
    """The settings of an S3 chunk store on a ``moto_server`` started here, or ``None``."""
    if not wanted:
        yield None
        return
    import socket
    import time
    import urllib.request

    import boto3

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    with (workdir / "moto.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        env = {
            "CHUNK_STORE": "s3://bench-chunks/runs",
            "CHUNK_STORE_ENDPOINT_URL": endpoint,
            "CHUNK_STORE_REGION": "us-east-1",
            "CHUNK_STORE_ACCESS_KEY_ID": "bench",
            "CHUNK_STORE_SECRET_ACCESS_KEY": "bench-secret-key",
        }
        boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret-key",
        ).create_bucket(Bucket="bench-chunks")
        print(f"==> S3 API server (moto) for the chunk store at {endpoint}", flush=True)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run(
    module: str, arguments: list[str], url: str | None, extra: dict[str, str] | None = None
) -> None:
    """Run one benchmark module with its output on the terminal."""
    env = dict(os.environ, **(extra or {}))
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
        label = LABELS.get(backend, backend)
        for size in figures["sizes"]:
            steps = size["steps"].values()
            lines.append(
                f"{label:<8} | {size['rows']:>11,} | {size['seconds']:>10.1f} | "
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
                f"{label:<8} | peak growth {small['rows']:,} -> {large['rows']:,} "
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
                f"{LABELS.get(backend, backend):<8} | {launched['records']:>9,} | {job:>7.2f} | "
                f"{launched['records'] / job:>8,.0f} | {bare:>11.2f} | {floor:>7.2f} | "
                f"{(job - floor) / bare:>21.2f} | {job / bare:>10.2f} | "
                f"{launched['job'][2]:,.0f}"
            )
    return lines


def store_rows(pipeline: dict[str, dict[str, Any]], http: dict[str, dict[str, Any]]) -> list[str]:
    """S3 chunk store against the local folder, same backend and size, same run."""
    lines = []
    for key, figures in pipeline.items():
        if not key.endswith("+s3") or key[:-3] not in pipeline:
            continue
        local = {size["rows"]: size["seconds"] for size in pipeline[key[:-3]]["sizes"]}
        for size in figures["sizes"]:
            if size["rows"] in local:
                lines.append(
                    f"pipeline {key[:-3]:<8} {size['rows']:>11,} rows: local "
                    f"{local[size['rows']]:.1f} s, s3 {size['seconds']:.1f} s, "
                    f"s3 / local x{size['seconds'] / local[size['rows']]:.2f}"
                )
    for key, figures in http.items():
        if not key.endswith("+s3") or key[:-3] not in http:
            continue
        local_runs = {r["records"]: r["job"][0] for r in http[key[:-3]]["runs"]}
        for launched in figures["runs"]:
            if launched["records"] in local_runs:
                base, job = local_runs[launched["records"]], launched["job"][0]
                lines.append(
                    f"http job {key[:-3]:<8} {launched['records']:>11,} records: local "
                    f"{base:.2f} s, s3 {job:.2f} s, s3 / local x{job / base:.2f}"
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
    parser.add_argument("--chunk-store", choices=["local", "s3", "both"], default="both")
    parser.add_argument(
        "--store-sizes",
        type=int,
        nargs="*",
        default=[1_000_000],
        help="pipeline sizes also run with the S3 chunk store",
    )
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
        with (
            server_url(backends, workdir) as url,
            s3_chunk_store(args.chunk_store != "local", workdir) as store,
        ):
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
            for backend in backends if store is not None else []:
                target = url if backend == "server" else None
                key = f"{backend}+s3"
                out = workdir / f"pipeline-{key}.json"
                sizes = [str(size) for size in args.store_sizes]
                arguments = ["--backend", backend, "--transformer", args.transformer]
                arguments += ["--json", str(out), "--sizes", *sizes]
                run("bench_pipeline", arguments, target, store)
                pipeline[key] = json.loads(out.read_text())
                out = workdir / f"http-{key}.json"
                arguments = ["--backend", backend, "--json", str(out), "--delay", str(args.delay)]
                arguments += ["--pages", str(args.pages), "--job-pages", str(args.job_pages)]
                arguments += ["--launch-pages", str(args.launch_pages), "--job-only"]
                run("bench_http", arguments, target, store)
                http[key] = json.loads(out.read_text())
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
    if store_rows(pipeline, http):
        print("\nChunk store: S3 API server (moto, local) against the local folder, same run")
        print("\n".join(store_rows(pipeline, http)))
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
