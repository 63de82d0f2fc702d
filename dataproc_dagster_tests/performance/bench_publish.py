"""Benchmark: what one load's publish costs as the target and the ledger grow (issue 20).

(a) An append of ``--rows`` rows (1,000) into one partition of a table holding 10, 1,000 and
3,000 partitions (``--partitions``): seconds per load, next to a plain ``INSERT ... SELECT`` of
the same rows from a table (the floor). Publishing must cost with the load, not the table:
1,000 partitions within 2x of 10.

(b) The same append with 1,000, 100,000 and 500,000 past loads of the target in the ledger
(``--ledger``), filled directly with ``INSERT ... SELECT FROM numbers()``
(:func:`ledger_filler_sql`): a load reads its own entries only, so 500,000 within 1.2x of 1,000.

Run with ``./run.sh bench`` or ``python -m dataproc_dagster_tests.performance.bench_publish
[--backend embedded|server|both] [--partitions 10 1000 3000] [--ledger 1000 100000 500000]
[--rows 1000] [--repeat 3] [--json FILE]``. The server is ``CLICKHOUSE_URL`` when it names one,
otherwise a local server started for the run. Figures are printed; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from dataproc_dagster.clickhouse.connection import ClickHouseConnection
from dataproc_dagster.core.chunks import ChunkSet, ChunkWriter
from dataproc_dagster.core.modes import WriteMode
from dataproc_dagster.loading.ledger import LEDGER_TABLE
from dataproc_dagster.loading.spec import LoadSpec
from dataproc_dagster.loading.writer import load_chunkset

TABLE = "events"
# Columns of a ledger row and the SQL filling them for past load number ``number``. A ledger
# has some of them (load_key, load_id, dataset_id differ between its versions); the filler
# fills those it has and lets the others take their defaults.
LEDGER_FILL: dict[str, str] = {
    "target": "{target}",
    "load_key": "lower(hex(cityHash64('past', number)))",
    "load_id": "concat('past-', toString(number))",
    "dataset_id": "concat('past-', toString(number), '/extract')",
    "mode": "'append'",
    "run_id": "concat('past-run-', toString(number))",
    "state": "'published'",
    "rows": "1000",
    "seq": "number + 1",
}
BASE_LEDGER_COLUMNS = ("target", "load_id", "mode", "run_id", "state", "rows", "seq")


def ledger_filler_sql(
    database: str, target: str, n: int, columns: Iterable[str] = BASE_LEDGER_COLUMNS
) -> str:
    """``INSERT ... SELECT FROM numbers(n)``: ``n`` past, published loads of ``target``.

    Fills the ledger's ``target``, ``load_id``, ``mode`` ('append'), ``run_id``, ``state``
    ('published'), ``rows`` (1000) and ``seq`` (1..n, older than any real load), one row per
    past load with a distinct load_id; the ledger's other columns take their defaults.
    ``columns`` (the ledger's own columns, see :func:`ledger_columns`) picks among
    :data:`LEDGER_FILL` instead, so a ledger keyed by ``load_key`` or ``dataset_id`` gets a
    distinct key per past load too.
    """
    names = [name for name in LEDGER_FILL if name in set(columns)]
    literal = "'" + target.replace("\\", "\\\\").replace("'", "\\'") + "'"
    values = [LEDGER_FILL[name].replace("{target}", literal) for name in names]
    return (
        f"INSERT INTO `{database}`.`{LEDGER_TABLE}` ({', '.join(names)}) "
        f"SELECT {', '.join(values)} FROM numbers({int(n)})"
    )


def ledger_columns(client: Client, database: str) -> list[str]:
    """The columns the ledger of ``database`` has."""
    rows = client.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}",
        parameters={"db": database, "t": LEDGER_TABLE},
    ).result_rows
    return [str(row[0]) for row in rows]


class Loads:
    """Appends of ``rows`` rows into one partition, each a new load with its own chunks."""

    def __init__(self, client: Client, folder: Path, rows: int, embedded: bool) -> None:
        self.client = client
        self.folder = folder
        self.rows = rows
        self.embedded = embedded
        self.count = 0
        # Loaders before issue 20 had no load_id: their identity was the chunks' dataset_id,
        # which is unique per load here as well, so the figures compare.
        self.with_load_id = "load_id" in inspect.signature(load_chunkset).parameters

    def chunks(self, name: str) -> ChunkSet:
        ids = range(10_000_000 + self.count * self.rows, 10_000_000 + (self.count + 1) * self.rows)
        table = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "p": pa.array([0] * len(ids), pa.uint32()),
                "v": pa.array([1] * len(ids), pa.int64()),
            }
        )
        with ChunkWriter(self.folder / name, f"{name}/extract") as writer:
            writer.write(table)
        return writer.close()

    def timed(self, database: str) -> float:
        """Seconds of one ``load_chunkset`` (chunks written beforehand)."""
        self.count += 1
        name = f"{database}-load-{self.count}"
        chunks = self.chunks(name)
        spec = LoadSpec(database=database, table=TABLE, mode=WriteMode.APPEND, order_by=("id",))
        extra: dict[str, Any] = {"load_id": name} if self.with_load_id else {}
        start = time.perf_counter()
        load_chunkset(
            self.client,
            chunks,
            spec,
            run_id=name,
            engine_reads_files=self.embedded,
            exclusive=self.embedded,
            **extra,
        )
        return time.perf_counter() - start


def _create(client: Client, database: str, partitions: int, rows_per_partition: int) -> None:
    client.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    client.command(f"CREATE DATABASE `{database}`")
    client.command(
        f"CREATE TABLE `{database}`.{TABLE} (id Int64, p UInt32, v Int64) "
        "ENGINE = MergeTree PARTITION BY p ORDER BY id"
    )
    client.command(
        f"INSERT INTO `{database}`.{TABLE} SELECT number, number % {partitions}, 0 "
        f"FROM numbers({partitions * rows_per_partition}) "
        "SETTINGS max_partitions_per_insert_block = 0"
    )


def _plain_insert(client: Client, database: str, rows: int) -> float:
    """Seconds of ``INSERT INTO target SELECT * FROM src`` of ``rows`` rows into partition 0."""
    source = f"`{database}`.src"
    client.command(f"CREATE TABLE {source} AS `{database}`.{TABLE}")
    client.command(f"INSERT INTO {source} SELECT 20000000 + number, 0, 2 FROM numbers({rows})")
    start = time.perf_counter()
    client.command(f"INSERT INTO `{database}`.{TABLE} SELECT * FROM {source}")
    seconds = time.perf_counter() - start
    client.command(f"DROP TABLE {source} SYNC")
    return seconds


def _figures(seconds: list[float]) -> dict[str, float]:
    return {"median": statistics.median(seconds), "min": min(seconds)}


def bench_partitions(
    client: Client, loads: Loads, counts: list[int], repeat: int
) -> list[dict[str, Any]]:
    """(a): per partition count, seconds per append into one partition and the floor."""
    results = []
    for partitions in counts:
        database = f"bench_publish_p{partitions}"
        _create(client, database, partitions, 10)
        loads.timed(database)  # not counted: the first load of a database creates its ledger
        seconds = [loads.timed(database) for _ in range(repeat)]
        plain = _plain_insert(client, database, loads.rows)
        results.append({"partitions": partitions, "plain": plain, **_figures(seconds)})
        client.command(f"DROP DATABASE `{database}` SYNC")
    return results


def bench_ledger(
    client: Client, loads: Loads, sizes: list[int], repeat: int
) -> list[dict[str, Any]]:
    """(b): per ledger size, seconds per append with that many past loads of the target."""
    results = []
    for past in sizes:
        database = f"bench_publish_l{past}"
        _create(client, database, 10, 10)
        loads.timed(database)  # creates the ledger as the loader makes it
        columns = ledger_columns(client, database)
        client.command(ledger_filler_sql(database, TABLE, past, columns))
        seconds = [loads.timed(database) for _ in range(repeat)]
        ((ledger_rows,),) = client.query(
            f"SELECT count() FROM `{database}`.`{LEDGER_TABLE}`"
        ).result_rows
        results.append({"past": past, "ledger_rows": int(ledger_rows), **_figures(seconds)})
        client.command(f"DROP DATABASE `{database}` SYNC")
    return results


def _ratios(row: dict[str, Any], base: dict[str, Any]) -> str:
    """``median / base median`` and ``min / base min``: the min moves less on a busy machine."""
    return f"{row['median'] / base['median']:.2f} / {row['min'] / base['min']:.2f}"


def partition_lines(backend: str, rows: int, results: list[dict[str, Any]]) -> list[str]:
    """The table of (a)."""
    header = (
        f"{'backend':<8} | {'partitions':>10} | {'load s median':>13} | {'load s min':>10} | "
        f"{'plain INSERT SELECT s':>21} | x fewest partitions (median / min)"
    )
    lines = [f"append of {rows:,} rows into one partition", header, "-" * len(header)]
    for row in results:
        lines.append(
            f"{backend:<8} | {row['partitions']:>10,} | {row['median']:>13.3f} | "
            f"{row['min']:>10.3f} | {row['plain']:>21.3f} | {_ratios(row, results[0])}"
        )
    return lines


def ledger_lines(backend: str, rows: int, results: list[dict[str, Any]]) -> list[str]:
    """The table of (b)."""
    header = (
        f"{'backend':<8} | {'past loads':>10} | {'ledger rows':>11} | {'load s median':>13} | "
        f"{'load s min':>10} | x fewest past loads (median / min)"
    )
    lines = [f"append of {rows:,} rows with past loads in the ledger", header, "-" * len(header)]
    for row in results:
        lines.append(
            f"{backend:<8} | {row['past']:>10,} | {row['ledger_rows']:>11,} | "
            f"{row['median']:>13.3f} | {row['min']:>10.3f} | {_ratios(row, results[0])}"
        )
    return lines


@contextlib.contextmanager
def _connection(backend: str, workdir: Path) -> Iterator[ClickHouseConnection]:
    """The embedded engine in ``workdir``, ``CLICKHOUSE_URL``, or a local server for the run."""
    if backend == "embedded":
        yield ClickHouseConnection(url=f"chdb://{workdir / 'clickhouse'}")
        return
    given = os.environ.get("CLICKHOUSE_URL", "")
    if given.startswith(("http://", "https://")):
        yield ClickHouseConnection(url=given)
        return
    from dataproc_dagster.clickhouse.server import local_clickhouse_server

    with local_clickhouse_server(workdir / "clickhouse-server") as url:
        print(f"==> local ClickHouse server for the publish benchmark at {url}", flush=True)
        yield ClickHouseConnection(url=url)


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Both benchmarks on one backend; prints their tables and returns the figures."""
    with _connection(backend, workdir / backend) as connection, connection.get_client() as client:
        loads = Loads(client, workdir / backend / "chunks", args.rows, connection.is_embedded)
        print(f"\n==> publish benchmark, backend {backend}", flush=True)
        _create(client, "bench_publish_warmup", 1, 1)  # the first load pays for warming up
        loads.timed("bench_publish_warmup")
        client.command("DROP DATABASE bench_publish_warmup SYNC")
        partitions = bench_partitions(client, loads, args.partitions, args.repeat)
        print("\n".join(partition_lines(backend, args.rows, partitions)), flush=True)
        ledger = bench_ledger(client, loads, args.ledger, args.repeat)
        print("\n".join(ledger_lines(backend, args.rows, ledger)), flush=True)
    return {"backend": backend, "rows": args.rows, "partitions": partitions, "ledger": ledger}


def main(argv: list[str] | None = None) -> int:
    """Run the publish benchmarks and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["embedded", "server", "both"], default="both")
    parser.add_argument("--partitions", type=int, nargs="*", default=[10, 1000, 3000])
    parser.add_argument("--ledger", type=int, nargs="*", default=[1000, 100_000, 500_000])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    backends = ["embedded", "server"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="dataproc-bench-publish-") as tmp:
        os.environ["DATAPROC_DATA_DIR"] = str(Path(tmp) / "data")
        figures = [run_backend(backend, args, Path(tmp)) for backend in backends]
    print(
        "\ntargets: 1,000 partitions within 2x of 10; 500,000 past loads within 1.2x of 1,000. "
        "Timings move with the machine's load: compare within one run."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
