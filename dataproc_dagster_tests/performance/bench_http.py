"""HTTP extractor benchmark: sequential vs concurrent paging, and the whole generic job.

Serves generated records from a separate process (``dataproc_dagster_tests.servers.http_api``)
that adds 20 ms to every response, then prints:

1. records/s of the extract step (paging, JSON, flattening, Parquet chunks) over 1,000 pages of
   100 records, sequentially and with concurrency 4 and 8, and the step's peak memory;
2. peak memory of the extract step at 1,000 and 5,000 pages (flat = chunks leave as they fill);
3. the whole ``http_to_clickhouse`` job (extract + load into the embedded ClickHouse), launched
   with ``dagster job execute`` as a user would, against two references launched as processes
   the same way in the same run: a bare httpx async loop at concurrency 8 that builds a
   DataFrame of the records (the work itself), and a trivial two-op in-process Dagster job
   (Dagster's floor: start-up and events). Our overhead is job - floor - bare loop.

Run with ``./run.sh bench`` or ``python -m dataproc_dagster_tests.performance.bench_http``;
``--backend server`` loads into the ClickHouse server of ``CLICKHOUSE_URL`` instead of the
embedded engine, ``--job-only`` skips sections 1 and 2 (they do not touch ClickHouse).
The server memoizes rendered pages after a warm-up pass, so that on a small machine its CPU
does not mask the client's; the 20 ms delay still applies to every response. Figures are
printed; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

PAGE_SIZE = 100


@contextmanager
def api_server(records: int, delay: float) -> Iterator[str]:
    """The test API in a child process; yields its base URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dataproc_dagster_tests.servers.http_api",
            "--records",
            str(records),
            "--delay",
            str(delay),
            "--cache",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        httpx.get(url + "/pages?page=1&per_page=1", timeout=10).raise_for_status()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class PeakMemory:
    """Samples this process's RSS every 10 ms; ``peak_mb`` is the highest above the start."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.start_mb = self._rss()
        self.peak_mb = self.start_mb
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> float:
        return float(self._process.memory_info().rss) / 2**20

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_mb = max(self.peak_mb, self._rss())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss())

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.start_mb


def run_extract_step(
    url: str, pages: int, concurrency: int, workdir: Path
) -> tuple[int, float, float, float]:
    """The extract step's work (HTTP -> Arrow -> Parquet chunks): rows, seconds, peak/growth MB."""
    from dagster import build_op_context

    from dataproc_dagster.core.chunks import ChunkWriter
    from dataproc_dagster.pipeline.contracts import StepContext
    from dataproc_dagster.sources.http.extractor import create_http_extractor
    from dataproc_dagster.sources.http.pagination import page_number

    extractor = create_http_extractor(
        url + "/pages",
        paginator=page_number(
            page_size=PAGE_SIZE, total_pages_path="meta.total_pages", max_pages=pages
        ),
        records_path="data.items",
        concurrency=concurrency,
    )
    ctx = StepContext("bench_http", "bench_http__extract", build_op_context())
    with PeakMemory() as memory:
        started = time.perf_counter()
        with ChunkWriter(workdir / f"extract-{pages}-{concurrency}", "bench") as writer:
            for chunk in extractor.extract(ctx):
                writer.write(chunk)
            chunks = writer.close()
        seconds = time.perf_counter() - started
    return chunks.rows, seconds, memory.peak_mb, memory.growth_mb


def bare_httpx_loop(
    url: str, pages: int, concurrency: int, *, frame: bool = False
) -> tuple[int, float]:
    """Fetch and JSON-decode ``pages`` pages with a plain httpx async loop: rows, seconds.

    With ``frame`` the records end in one pandas DataFrame (nested fields flattened).
    """

    async def main() -> int:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        semaphore = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def one(page: int) -> int:
                async with semaphore:
                    response = await client.get(
                        url + "/pages", params={"page": page, "per_page": PAGE_SIZE}
                    )
                    items: list[dict[str, object]] = response.json()["data"]["items"]
                    return items

            pages_items = await asyncio.gather(*(one(p) for p in range(1, pages + 1)))
        if frame:
            import pandas as pd

            records = [item for items in pages_items for item in items]
            return len(pd.json_normalize(records))
        return sum(len(items) for items in pages_items)

    started = time.perf_counter()
    rows = asyncio.run(main())
    return rows, time.perf_counter() - started


def clickhouse_url(backend: str, workdir: Path) -> str:
    """The ClickHouse of the job: an embedded engine in ``workdir`` or ``CLICKHOUSE_URL``."""
    from dataproc_dagster_tests.performance.bench_pipeline import backend_url

    return backend_url(str(workdir / "dataproc"), backend)


def run_generic_job(
    url: str, pages: int, concurrency: int, workdir: Path, backend: str = "embedded"
) -> tuple[int, float]:
    """The whole ``http_to_clickhouse`` job into ClickHouse: rows, seconds."""
    os.environ["DATAPROC_DATA_DIR"] = str(workdir / "dataproc")
    os.environ["CLICKHOUSE_URL"] = clickhouse_url(backend, workdir)
    from dataproc_dagster.clickhouse.resource import ClickHouseResource
    from dataproc_dagster.core.settings import get_settings
    from dataproc_dagster.generic_jobs.http_to_clickhouse import PIPELINE

    get_settings.cache_clear()
    clickhouse = ClickHouseResource(url=os.environ["CLICKHOUSE_URL"])
    config = job_config(url, pages, concurrency, "bench_items")
    started = time.perf_counter()
    result = PIPELINE.job.execute_in_process(
        run_config=config, resources={"clickhouse": clickhouse}
    )
    seconds = time.perf_counter() - started
    assert result.success
    rows = clickhouse.query_rows("SELECT count() FROM bench_items")[0][0]
    return int(rows), seconds


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_process(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Run ``command`` to its end: wall seconds, CPU seconds and peak RSS in MB.

    CPU seconds (user + system of the process and the children it waited for) move much less
    than wall time with the load of a shared machine.
    """
    cpu = _children_cpu()
    started = time.perf_counter()
    process = psutil.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0.0
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            members = [process, *process.children(recursive=True)]
            peak = max(peak, sum(m.memory_info().rss for m in members) / 2**20)
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} failed:\n{out[-2000:]}\n{err[-3000:]}")
    return seconds, _children_cpu() - cpu, peak


def job_config(url: str, pages: int, concurrency: int, table: str) -> dict[str, object]:
    """Run config of ``http_to_clickhouse`` for the test API."""
    return {
        "ops": {
            "http_to_clickhouse__extract": {
                "config": {
                    "url": url + "/pages",
                    "paginator": {
                        "style": "page_number",
                        "page_size": PAGE_SIZE,
                        "total_pages_path": "meta.total_pages",
                        "max_pages": pages,
                    },
                    "records_path": "data.items",
                    "concurrency": concurrency,
                }
            },
            "http_to_clickhouse__load": {"config": {"table": table, "mode": "replace"}},
        },
        # Keep the benchmark's output to its table: no per-event DEBUG lines.
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }


def compare_launched(
    url: str, pages: int, workdir: Path, backend: str = "embedded"
) -> dict[str, tuple[float, float, float]]:
    """Section 3: bare loop, Dagster's floor and our job, each as a process launched alike.

    Returns (wall s, CPU s, peak MB) of each, by ``bare`` / ``floor`` / ``job``.
    """
    dagster = str(Path(sys.executable).parent / "dagster")
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = dict(os.environ, DAGSTER_HOME=str(home), DATAPROC_DATA_DIR=str(workdir / "cli"))
    if backend == "embedded":
        env.pop("CLICKHOUSE_URL", None)
    else:
        env["CLICKHOUSE_URL"] = clickhouse_url(backend, workdir)
    config = workdir / "http_job.yaml"
    config.write_text(json.dumps(job_config(url, pages, 8, "bench_cli")))
    me = "dataproc_dagster_tests.performance.bench_http"
    bare = [sys.executable, "-m", me, "--bare-url", url, "--bare-pages", str(pages)]
    floor = [dagster, "job", "execute", "-m", f"{__package__}.floor_job", "-j", "floor"]
    ours = [dagster, "job", "execute", "-m", "dataproc_dagster", "-j", "http_to_clickhouse"]
    ours += ["-c", str(config)]
    records = pages * PAGE_SIZE
    figures = {}
    for name, command in (("bare", bare), ("floor", floor), ("job", ours)):
        figures[name] = run_process(command, env)
    labels = {
        "bare": "bare httpx loop x8 -> DataFrame (process)",
        "floor": "trivial 2-op in-process job (Dagster floor)",
        "job": "http_to_clickhouse (dagster job execute)",
    }
    for name, (seconds, cpu, peak) in figures.items():
        rows = 0 if name == "floor" else records
        rate = f"{rows / seconds:>11,.0f} rec/s" if rows else " " * 17
        print(
            f"   {labels[name]:<44} {rows:>9,} rows {seconds:>8.2f} s {rate}  "
            f"CPU {cpu:5.2f} s, peak {peak:,.0f} MB"
        )
    (bare_s, bare_cpu, _), (floor_s, floor_cpu, _), (job_s, job_cpu, _) = figures.values()
    print(
        f"   wall: job = floor + {(job_s - floor_s) / bare_s:.2f}x the bare loop (target <= 1.1x); "
        f"our overhead (job - floor - bare loop) {job_s - floor_s - bare_s:+.2f} s; "
        f"job / bare loop {job_s / bare_s:.2f}x"
    )
    print(
        f"   CPU:  job = floor + {(job_cpu - floor_cpu) / bare_cpu:.2f}x the bare loop; "
        f"our overhead {job_cpu - floor_cpu - bare_cpu:+.2f} s"
    )
    return figures


def _row(label: str, rows: int, seconds: float, extra: str = "") -> str:
    return f"{label:<44} {rows:>9,} rows {seconds:>8.2f} s {rows / seconds:>11,.0f} rec/s  {extra}"


def probe_in_subprocess(url: str, pages: int, workdir: Path) -> tuple[int, float, float, float]:
    """:func:`run_extract_step` in a new process, so that earlier runs do not hide its peak."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dataproc_dagster_tests.performance.bench_http",
            "--probe-url",
            url,
            "--probe-pages",
            str(pages),
            "--probe-dir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows, seconds, peak, growth = done.stdout.strip().splitlines()[-1].split()
    return int(rows), float(seconds), float(peak), float(growth)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a table of figures."""
    parser = argparse.ArgumentParser(description="HTTP extractor benchmark")
    parser.add_argument("--pages", type=int, default=1000, help="pages for the paging comparison")
    parser.add_argument("--job-pages", type=int, default=5000, help="pages for the job comparison")
    parser.add_argument(
        "--launch-pages",
        type=int,
        default=1000,
        help="pages for a second launched comparison (0: none)",
    )
    parser.add_argument("--delay", type=float, default=0.02, help="server delay per response, s")
    parser.add_argument(
        "--backend",
        choices=["embedded", "server"],
        default="embedded",
        help="load into embedded chDB in a temporary folder, or the server of CLICKHOUSE_URL",
    )
    parser.add_argument(
        "--job-only", action="store_true", help="only section 3 (the job against references)"
    )
    parser.add_argument("--json", help="also write the job figures to this JSON file")
    parser.add_argument("--probe-url", help=argparse.SUPPRESS)
    parser.add_argument("--probe-pages", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe-dir", help=argparse.SUPPRESS)
    parser.add_argument("--bare-url", help=argparse.SUPPRESS)
    parser.add_argument("--bare-pages", type=int, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    if args.bare_url:
        bare_httpx_loop(args.bare_url, args.bare_pages, 8, frame=True)
        return
    if args.probe_url:
        logging.getLogger("dagster").setLevel(logging.WARNING)
        run_extract_step(args.probe_url, 10, 8, Path(args.probe_dir))  # imports, first buffers
        result = run_extract_step(args.probe_url, args.probe_pages, 8, Path(args.probe_dir))
        print(*result)
        return

    logging.getLogger("dagster").setLevel(logging.WARNING)
    records = max(args.pages, args.job_pages, args.launch_pages) * PAGE_SIZE
    print(
        f"HTTP extractor benchmark: local server, {args.delay * 1000:.0f} ms added per response, "
        f"{PAGE_SIZE} records per page, {os.cpu_count()} CPUs, ClickHouse backend {args.backend}"
    )
    launched: dict[str, object] = {"backend": args.backend, "runs": []}
    with api_server(records, args.delay) as url, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # Warm-up: the server renders each page once (later requests are served from its
        # cache, so it does not compete with the client for CPU), and the client's imports
        # and first allocations happen outside the measurements.
        rows, seconds = bare_httpx_loop(url, records // PAGE_SIZE, 8)
        print(_row("   warm-up (server renders every page)", rows, seconds))
        if not args.job_only:
            extract_sections(url, args, workdir)
        total = args.job_pages * PAGE_SIZE
        print(f"\n3. {total:,} records: whole job vs a bare httpx loop (concurrency 8)")
        bare_rows, bare_seconds = bare_httpx_loop(url, args.job_pages, 8)
        print(_row("   bare httpx async loop (fetch + json)", bare_rows, bare_seconds))
        job_rows, job_seconds = run_generic_job(url, args.job_pages, 8, workdir, args.backend)
        print(_row("   http_to_clickhouse job (extract + load)", job_rows, job_seconds))
        ratio = (job_rows / job_seconds) / (bare_rows / bare_seconds)
        print(f"   in this process (imports done): job / bare loop {ratio:.2f}x throughput")
        runs: list[dict[str, object]] = []
        for pages in dict.fromkeys(p for p in (args.job_pages, args.launch_pages) if p):
            print(f"\n   launched as processes, {pages:,} pages:")
            figures = compare_launched(url, pages, workdir, args.backend)
            runs.append({"records": pages * PAGE_SIZE, **figures})
        launched["runs"] = runs
    if args.json:
        Path(args.json).write_text(json.dumps(launched))


def extract_sections(url: str, args: argparse.Namespace, workdir: Path) -> None:
    """Sections 1 and 2: the extract step alone, sequential against concurrent, and its memory."""
    run_extract_step(url, 20, 1, workdir)
    print(f"\n1. extract step, {args.pages:,} pages")
    results: dict[int, float] = {}
    for concurrency in (1, 4, 8):
        rows, seconds, peak, growth = run_extract_step(url, args.pages, concurrency, workdir)
        results[concurrency] = rows / seconds
        label = "sequential" if concurrency == 1 else f"concurrency {concurrency}"
        print(_row(f"   {label}", rows, seconds, f"peak RSS {peak:,.0f} MB (+{growth:,.0f} MB)"))
    for concurrency in (4, 8):
        speedup = results[concurrency] / results[1]
        target = " (target >= 5x)" if concurrency == 8 else ""
        print(f"   speed-up at concurrency {concurrency}: {speedup:.1f}x{target}")

    print("\n2. extract step peak memory against pages (concurrency 8, a fresh process each)")
    for pages in (100, args.pages, args.job_pages):
        rows, seconds, peak, growth = probe_in_subprocess(url, pages, workdir)
        detail = f"peak RSS {peak:,.0f} MB (+{growth:,.0f} MB during the step)"
        print(_row(f"   {pages:,} pages", rows, seconds, detail))


if __name__ == "__main__":
    main()
