"""Loads stay exactly-once on a table that others write too (issue 20).

Concurrent loads run in separate OS processes, each with its own client (helpers/shared_loads.py);
statements of other writers run from another client while a load is in flight. A crash is an
exception no ``except Exception`` catches, raised at a named instant of the loader (as in
test_load_ledger.py). A load's identity is its ``load_id``: the same load_id into the same table
publishes once; another load_id with the same rows is new data.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from dataproc_dagster.clickhouse.connection import ClickHouseConnection
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.clickhouse.server import local_clickhouse_server
from dataproc_dagster.core.chunks import ChunkSet, ChunkWriter
from dataproc_dagster.core.errors import ConfigError, DataprocError
from dataproc_dagster.core.modes import WriteMode
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.loading import writer
from dataproc_dagster.loading.spec import LoadResult, LoadSpec
from dataproc_dagster.loading.writer import load_chunkset
from dataproc_dagster_tests.helpers.shared_loads import LoadTask, LoadWorkers

DB = "shared"
COLUMNS = "id Int64, p UInt16, v Int64"
DEDUP = "SETTINGS non_replicated_deduplication_window = 1000"
REPETITIONS = 5
ROWS = 1500  # per load: 3 chunks of 500 over 8 partitions
OLD = range(1000)  # rows already in the target before a test's loads


class Killed(BaseException):
    """Stands for SIGKILL: not an ``Exception``, so the loader's error handling does not run."""


class Outage(RuntimeError):
    """Stands for a statement failing as the server goes away: the error handling runs."""


# --- data and tables -------------------------------------------------------------------------


def _chunks(
    name: str,
    ids: range,
    *,
    partitions: int = 8,
    v: int = 1,
    chunk_rows: int = 500,
) -> ChunkSet:
    """Rows ``id`` in ``ids``, ``p = id % partitions``, ``v``: chunk files under the data dir."""
    folder = get_settings().dataproc_data_dir / "chunks" / name
    with ChunkWriter(folder, f"{name}/extract", chunk_rows=chunk_rows) as chunk_writer:
        chunk_writer.write(
            pa.table(
                {
                    "id": pa.array(list(ids), pa.int64()),
                    "p": pa.array([i % partitions for i in ids], pa.uint16()),
                    "v": pa.array([v] * len(ids), pa.int64()),
                }
            )
        )
    return chunk_writer.close()


def _create(
    clickhouse: ClickHouseResource,
    table: str = "t",
    *,
    settings: str = "",
    old: range | None = OLD,
) -> None:
    """A MergeTree target partitioned by ``p``, holding ``old`` (v = 0) when given."""
    clickhouse.command(f"CREATE DATABASE IF NOT EXISTS {DB}")
    clickhouse.command(
        f"CREATE TABLE {DB}.{table} ({COLUMNS}) ENGINE = MergeTree PARTITION BY p ORDER BY id "
        + settings
    )
    if old is not None and len(old):
        clickhouse.command(
            f"INSERT INTO {DB}.{table} SELECT number + {old.start}, (number + {old.start}) % 8, "
            f"0 FROM numbers({len(old)})"
        )


def _spec(table: str = "t", mode: str = "append") -> LoadSpec:
    return LoadSpec(
        database=DB, table=table, mode=WriteMode(mode), partition_by="p", order_by=("id",)
    )


def _load(
    clickhouse: ClickHouseResource,
    chunks: ChunkSet,
    spec: LoadSpec,
    *,
    load_id: str,
    run_id: str = "run-1",
    on_chunk: Callable[[int, int], None] | None = None,
) -> LoadResult:
    """One load as the project's loader step makes it on this backend."""
    with clickhouse.get_client() as client:
        return load_chunkset(
            client,
            chunks,
            spec,
            run_id=run_id,
            load_id=load_id,
            on_chunk=on_chunk,
            engine_reads_files=clickhouse.is_embedded,
            exclusive=clickhouse.is_embedded,
        )


def _ids(clickhouse: ClickHouseResource, table: str = "t", where: str = "1") -> list[int]:
    rows = clickhouse.query_rows(f"SELECT id FROM {DB}.{table} WHERE {where} ORDER BY id")
    return [int(row[0]) for row in rows]


def _count_sum(clickhouse: ClickHouseResource, table: str = "t") -> tuple[int, int]:
    ((count, total),) = clickhouse.query_rows(f"SELECT count(), sum(id) FROM {DB}.{table}")
    return int(count), int(total)


def _assert_exactly(clickhouse: ClickHouseResource, want: list[int], table: str = "t") -> None:
    """Every id of ``want`` once and nothing else: count, sum and the id list."""
    assert _count_sum(clickhouse, table) == (len(want), sum(want))
    assert _ids(clickhouse, table) == sorted(want)


def _user_tables(clickhouse: ClickHouseResource) -> list[str]:
    """Tables of the test database other than the loader's own ledger tables."""
    rows = clickhouse.query_rows(
        f"SELECT name FROM system.tables WHERE database = '{DB}' "
        "AND NOT startsWith(name, '_dataproc') ORDER BY name"
    )
    return [row[0] for row in rows]


def _work_tables(clickhouse: ClickHouseResource) -> list[str]:
    """Tables a load left behind: the test's own names never start with ``_``."""
    return [name for name in _user_tables(clickhouse) if name.startswith("_")]


@contextlib.contextmanager
def _kill_points(hook: Callable[[str], None]) -> Iterator[None]:
    """Send every named instant of the loader (``kill_point_for_tests``) to ``hook``.

    Patched in each loaded ``dataproc_dagster.loading`` module that holds the function, so the
    test does not depend on which module of the loader calls it.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name, module in list(sys.modules.items()):
            if name.startswith("dataproc_dagster.loading") and hasattr(
                module, "kill_point_for_tests"
            ):
                patch.setattr(module, "kill_point_for_tests", hook)
        assert writer.kill_point_for_tests is hook
        yield


def _publish_points(
    clickhouse: ClickHouseResource,
    chunks: ChunkSet,
    create: Callable[..., object],
    mode: str = "append",
) -> list[str]:
    """The loader's instants from publishing on (``publish*``), seen in a load of ``chunks``.

    The load goes into table ``probe``, made by ``create(clickhouse, "probe")`` like the
    test's own target, so that it takes the same path.
    """
    create(clickhouse, "probe")
    seen: list[str] = []
    with _kill_points(seen.append):
        _load(clickhouse, chunks, _spec("probe", mode), load_id="probe")
    publishing = [name for name in seen if name.startswith("publish")]
    assert publishing, f"no instant named publish* among the loader's kill points: {seen}"
    return publishing


# --- concurrent loads in separate processes (server) ----------------------------------------


@pytest.fixture(scope="module")
def workers() -> Iterator[LoadWorkers]:
    """Four worker processes, started once for the module's concurrency tests."""
    with LoadWorkers(4) as started:
        yield started


@pytest.mark.server
@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_appends_keep_every_row_once(
    server_clickhouse: ClickHouseResource, workers: LoadWorkers, processes: int
) -> None:
    """A last-swap-wins publish lost whole loads: every round must keep every row once."""
    _create(server_clickhouse)
    want = list(OLD)
    for repetition in range(REPETITIONS):
        tasks = []
        for worker in range(processes):
            first = 10_000 + (repetition * processes + worker) * ROWS
            name = f"r{repetition}-w{worker}"
            ids = range(first, first + ROWS)
            tasks.append(
                LoadTask(server_clickhouse.url, _chunks(name, ids), _spec(), name, f"load-{name}")
            )
            want.extend(ids)
        outcome = workers.run_round(tasks)
        assert outcome == [None] * len(tasks), outcome
        _assert_exactly(server_clickhouse, want)
        assert _work_tables(server_clickhouse) == []


@pytest.mark.server
def test_concurrent_replace_partitions_of_different_partitions(
    server_clickhouse: ClickHouseResource, workers: LoadWorkers
) -> None:
    """Two backfill runs: each partition holds its new rows, the other partitions their old."""
    _create(server_clickhouse)
    untouched = [i for i in OLD if i % 8 not in (0, 1)]
    for repetition in range(REPETITIONS):
        tasks = []
        news: dict[int, list[int]] = {}
        for partition in (0, 1):
            # ids whose id % 8 is this partition, new in every repetition
            first = 100_000 * (repetition + 1) + partition
            ids = range(first, first + 8 * 250, 8)
            name = f"r{repetition}-p{partition}"
            chunks = _chunks(name, ids, v=repetition + 1)
            spec = _spec(mode="replace_partitions")
            tasks.append(LoadTask(server_clickhouse.url, chunks, spec, name, f"load-{name}"))
            news[partition] = list(ids)
        outcome = workers.run_round(tasks)
        assert outcome == [None] * len(tasks), outcome
        for partition, loaded in news.items():
            assert _ids(server_clickhouse, where=f"p = {partition}") == loaded
            rows = server_clickhouse.query_rows(
                f"SELECT DISTINCT v FROM {DB}.t WHERE p = {partition}"
            )
            assert rows == [(repetition + 1,)]
        assert _ids(server_clickhouse, where="p NOT IN (0, 1)") == untouched
        _assert_exactly(server_clickhouse, untouched + news[0] + news[1])
        assert _work_tables(server_clickhouse) == []


@pytest.mark.server
def test_a_retry_racing_its_original_loads_the_rows_once(
    server_clickhouse: ClickHouseResource, workers: LoadWorkers
) -> None:
    """A step retried, or re-executed on another pod, while its first attempt still runs.

    Both attempts are the same load (same load_id). "A live load's work tables are never
    dropped by another process": one attempt publishes, the other fails cleanly or finds the
    load done, and the rows arrive once.
    """
    _create(server_clickhouse)
    want = list(OLD)
    for repetition in range(REPETITIONS):
        first = 10_000 + repetition * ROWS
        ids = range(first, first + ROWS)
        name = f"r{repetition}"
        chunks = _chunks(name, ids)
        tasks = [
            LoadTask(server_clickhouse.url, chunks, _spec(), f"{name}-attempt-{n}", f"load-{name}")
            for n in (1, 2)
        ]
        outcome = workers.run_round(tasks)
        want.extend(ids)
        assert None in outcome, outcome  # at least one attempt loaded
        _assert_exactly(server_clickhouse, want)
        assert _work_tables(server_clickhouse) == []


# --- other writers during a load (server) ---------------------------------------------------


class OutsideWriter(threading.Thread):
    """A plain client inserting 100 rows every ~10 ms, remembering which inserts were acked."""

    FIRST_ID = 50_000_000

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acknowledged: list[int] = []
        self.failed: list[str] = []
        self.stop = threading.Event()

    def batch(self, number: int) -> range:
        start = self.FIRST_ID + number * 100
        return range(start, start + 100)

    def run(self) -> None:
        with ClickHouseConnection(url=self.url).get_client() as client:
            number = 0
            while not self.stop.is_set():
                rows = [[i, i % 8, -1] for i in self.batch(number)]
                try:
                    client.insert("t", rows, column_names=["id", "p", "v"], database=DB)
                except Exception as exc:  # not acknowledged: may or may not be there
                    self.failed.append(str(exc)[:200])
                else:
                    self.acknowledged.append(number)
                number += 1
                time.sleep(0.01)


@pytest.mark.server
def test_an_outside_writer_keeps_every_acknowledged_row(
    server_clickhouse: ClickHouseResource,
) -> None:
    """Rows another client wrote between a snapshot and a swap were lost."""
    _create(server_clickhouse)
    outside = OutsideWriter(server_clickhouse.url)
    outside.start()
    project: list[int] = []
    try:
        while not outside.acknowledged and outside.is_alive():
            time.sleep(0.01)
        for load in range(3):
            ids = range(10_000 + load * ROWS, 10_000 + (load + 1) * ROWS)
            _load(server_clickhouse, _chunks(f"load-{load}", ids), _spec(), load_id=f"L{load}")
            project.extend(ids)
        during = len(outside.acknowledged)
        while len(outside.acknowledged) == during and outside.is_alive():
            time.sleep(0.01)  # one more insert after the last load
    finally:
        outside.stop.set()
        outside.join(timeout=30)
    assert len(outside.acknowledged) >= 2, outside.failed
    acked = [i for number in outside.acknowledged for i in outside.batch(number)]
    present = _ids(server_clickhouse, where=f"id >= {OutsideWriter.FIRST_ID}")
    missing = sorted(set(acked) - set(present))
    assert missing == [], f"{len(missing)} of {len(acked)} acknowledged outside rows lost"
    assert len(present) == len(set(present))  # no outside row twice
    assert _ids(server_clickhouse, where=f"id < {OutsideWriter.FIRST_ID}") == sorted(
        list(OLD) + project
    )
    assert _work_tables(server_clickhouse) == []


STATEMENTS = {
    "delete": f"DELETE FROM {DB}.t WHERE p = 3 AND v = 0",  # old rows only
    "truncate": f"TRUNCATE TABLE {DB}.t",
    "add_column": f"ALTER TABLE {DB}.t ADD COLUMN note String DEFAULT 'x'",
}
# Counts 0 while the statement is in effect.
UNDONE = {
    "delete": f"SELECT count() FROM {DB}.t WHERE p = 3 AND v = 0",
    "truncate": f"SELECT count() FROM {DB}.t WHERE v = 0",
    "add_column": f"SELECT count() = 0 FROM system.columns WHERE database = '{DB}' "
    "AND table = 't' AND name = 'note'",
}


@pytest.mark.server
@pytest.mark.parametrize("when", ["staging", "publishing"])
@pytest.mark.parametrize("mode", ["append", "replace_partitions"])
@pytest.mark.parametrize("statement", sorted(STATEMENTS))
def test_a_statement_acknowledged_during_a_load_stays_in_effect(
    server_clickhouse: ClickHouseResource, statement: str, mode: str, when: str
) -> None:
    """A DELETE, TRUNCATE or ADD COLUMN made while a load ran came undone at its swap.

    The statement runs from another client at the first staged chunk, or at the middle instant
    of publishing. An ``ADD COLUMN`` may make the publish fail cleanly (the staged parts no
    longer fit the table); the step's retry with the same load_id must then load the rows once.
    """
    # replace_partitions: the load replaces partitions 0 and 1 only.
    partitions = 8 if mode == "append" else 2
    new = range(10_000, 10_000 + 2000)
    chunks = _chunks("new", new, partitions=partitions, chunk_rows=1000)
    point = ""
    if when == "publishing":
        publishing = _publish_points(server_clickhouse, chunks, _create, mode)
        point = publishing[len(publishing) // 2]
    _create(server_clickhouse)
    in_effect: list[int] = []

    def outside_statement(name: str = point) -> None:
        if name == point and not in_effect:
            server_clickhouse.command(STATEMENTS[statement])
            ((undone,),) = server_clickhouse.query_rows(UNDONE[statement])
            in_effect.append(int(undone))

    def at_chunk(index: int, rows: int) -> None:
        if when == "staging":
            outside_statement()

    spec = _spec(mode=mode)
    with _kill_points(outside_statement if point else lambda _name: None):
        try:
            _load(server_clickhouse, chunks, spec, load_id="L1", on_chunk=at_chunk)
        except DataprocError:
            assert statement == "add_column", "only a concurrent ADD COLUMN may fail the load"
            _load(server_clickhouse, chunks, spec, load_id="L1")
    assert in_effect == [0]  # it ran during the load and had taken effect
    assert server_clickhouse.query_rows(UNDONE[statement]) == [(0,)]  # still in effect
    if statement == "truncate" and when == "publishing":
        # Whole new partitions published before the TRUNCATE are gone, the others arrived.
        per_partition = server_clickhouse.query_rows(
            f"SELECT p, count(), uniqExact(id), countIf(v = 0) FROM {DB}.t GROUP BY p"
        )
        full = len(new) // partitions
        assert all(
            partition < partitions and count == unique == full and old == 0
            for partition, count, unique, old in per_partition
        ), per_partition
        assert _work_tables(server_clickhouse) == []
        return
    kept = [] if statement == "truncate" else list(OLD)
    if statement == "delete":
        kept = [i for i in kept if i % 8 != 3]
    if mode == "replace_partitions":
        kept = [i for i in kept if i % 8 not in (0, 1)]
    _assert_exactly(server_clickhouse, kept + list(new))
    if statement == "add_column":
        ((with_note,),) = server_clickhouse.query_rows(f"SELECT countIf(note = 'x') FROM {DB}.t")
        assert with_note == len(kept) + len(new)
    assert _work_tables(server_clickhouse) == []


# --- materialized views (both backends) -----------------------------------------------------


def _with_view(
    clickhouse: ClickHouseResource,
    table: str,
    *,
    target_window: bool = True,
    view_window: bool = True,
) -> str:
    """``table`` with an MV copying every row into ``<table>_mv_rows``; returns that name."""
    rows_table = f"{table}_mv_rows"
    _create(clickhouse, table, settings=DEDUP if target_window else "", old=None)
    clickhouse.command(
        f"CREATE TABLE {DB}.{rows_table} ({COLUMNS}) ENGINE = MergeTree ORDER BY id "
        + (DEDUP if view_window else "")
    )
    clickhouse.command(
        f"CREATE MATERIALIZED VIEW {DB}.{table}_mv TO {DB}.{rows_table} "
        f"AS SELECT id, p, v FROM {DB}.{table}"
    )
    return rows_table


def test_a_materialized_view_sees_each_loaded_row_once(clickhouse: ClickHouseResource) -> None:
    """Partition moves and swaps never fire MVs; a repeated load must not fire them twice."""
    rows_table = _with_view(clickhouse, "t")
    first = list(range(3000))
    chunks = _chunks("first", range(3000))
    _load(clickhouse, chunks, _spec(), load_id="A")
    _assert_exactly(clickhouse, first)
    _assert_exactly(clickhouse, first, rows_table)

    _load(clickhouse, chunks, _spec(), load_id="A")  # the step's retry
    _load(clickhouse, chunks, _spec(), load_id="A", run_id="run-1-reexecution")
    _assert_exactly(clickhouse, first)
    _assert_exactly(clickhouse, first, rows_table)

    second = range(3000, 4000)
    _load(clickhouse, _chunks("second", second), _spec(), load_id="B", run_id="run-2")
    _assert_exactly(clickhouse, first + list(second))
    _assert_exactly(clickhouse, first + list(second), rows_table)
    assert _work_tables(clickhouse) == []


@pytest.mark.parametrize("interruption", ["killed", "error"])
def test_a_load_interrupted_while_publishing_reaches_the_view_once(
    clickhouse: ClickHouseResource, interruption: str
) -> None:
    """Interrupted at the first, a middle and the last instant of publishing, then loaded again.

    ``killed``: the process dies (no error handling runs) and the load is resumed by a
    re-execution on another host (another host name, as a new Kubernetes pod). ``error``: a
    statement fails; the loader's error handling runs (it may finish the publish itself), then
    the step's own retry, in the same process, loads again.
    """
    ids = list(range(3000))
    chunks = _chunks("data", range(3000))
    publishing = _publish_points(clickhouse, chunks, _with_view)
    points = list(dict.fromkeys([publishing[0], publishing[len(publishing) // 2], publishing[-1]]))

    for number, point in enumerate(points):
        table = f"t{number}"
        rows_table = _with_view(clickhouse, table)

        def interrupt(name: str, point: str = point) -> None:
            if name == point:
                raise Killed(name) if interruption == "killed" else Outage(name)

        with _kill_points(interrupt):
            if interruption == "killed":
                with pytest.raises(Killed):
                    _load(clickhouse, chunks, _spec(table), load_id="A")
            else:
                # The loader's error handling may finish the publish itself, or fail the step.
                with contextlib.suppress(DataprocError):
                    _load(clickhouse, chunks, _spec(table), load_id="A")
        # Readers may see some partitions arrive, never a partial one.
        per_partition = clickhouse.query_rows(f"SELECT p, count() FROM {DB}.{table} GROUP BY p")
        assert all(count == 375 for _, count in per_partition), (point, per_partition)

        with pytest.MonkeyPatch.context() as patch:
            if interruption == "killed":
                patch.setattr(socket, "gethostname", lambda: "another-pod")
                _load(clickhouse, chunks, _spec(table), load_id="A", run_id="run-1-reexecution")
            else:
                _load(clickhouse, chunks, _spec(table), load_id="A")
        _assert_exactly(clickhouse, ids, table)
        _assert_exactly(clickhouse, ids, rows_table)
        _load(clickhouse, chunks, _spec(table), load_id="A", run_id="run-1-another-reexecution")
        _assert_exactly(clickhouse, ids, table)
        _assert_exactly(clickhouse, ids, rows_table)
        assert _work_tables(clickhouse) == [], point


@pytest.mark.parametrize("without_window", ["target", "view"])
def test_a_view_without_a_dedup_window_is_refused_before_writing(
    clickhouse: ClickHouseResource, without_window: str
) -> None:
    """Exactly-once into an MV needs both tables to deduplicate a retried insert."""
    rows_table = _with_view(
        clickhouse,
        "events",
        target_window=without_window != "target",
        view_window=without_window != "view",
    )
    clickhouse.command(f"INSERT INTO {DB}.events SELECT number, number % 8, 0 FROM numbers(100)")
    tables = _user_tables(clickhouse)
    with pytest.raises(ConfigError) as refused:
        _load(clickhouse, _chunks("new", range(1000, 2000)), _spec("events"), load_id="A")
    message = str(refused.value)
    assert "non_replicated_deduplication_window" in message
    assert (rows_table if without_window == "view" else "events") in message
    _assert_exactly(clickhouse, list(range(100)), "events")
    _assert_exactly(clickhouse, list(range(100)), rows_table)
    assert _user_tables(clickhouse) == tables


# --- odd targets ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_chunk_spanning_150_partitions_loads(clickhouse: ClickHouseResource, mode: str) -> None:
    """The private stage takes more partitions than max_partitions_per_insert_block (100)."""
    _create(clickhouse)
    ids = range(10_000, 13_000)
    chunks = _chunks("wide", ids, partitions=150, chunk_rows=3000)
    _load(clickhouse, chunks, _spec(mode=mode), load_id="A")
    _assert_exactly(clickhouse, (list(OLD) if mode == "append" else []) + list(ids))
    ((partitions,),) = clickhouse.query_rows(
        f"SELECT uniqExact(partition_id) FROM system.parts WHERE database = '{DB}' "
        "AND table = 't' AND active"
    )
    assert partitions == 150
    assert _work_tables(clickhouse) == []


CLUSTER_XML = (
    "<clickhouse><remote_servers><test_shard_localhost><shard><replica><host>127.0.0.1</host>"
    "<port>9000</port></replica></shard></test_shard_localhost></remote_servers></clickhouse>"
)


@pytest.fixture(scope="module")
def cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseResource]:
    """A server of its own defining cluster ``test_shard_localhost`` (the session's has none)."""
    folder = tmp_path_factory.mktemp("cluster-server")
    config = folder / "config" / "config.d"
    config.mkdir(parents=True)
    (config / "cluster.xml").write_text(CLUSTER_XML, encoding="utf-8")
    with local_clickhouse_server(folder) as url:
        yield ClickHouseResource(url=url)


@pytest.mark.server
@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_distributed_target_is_refused_before_writing(
    cluster_server: ClickHouseResource, data_dir: Path, mode: str
) -> None:
    """Rows staged in a table AS a Distributed one went straight into the shards."""
    server = cluster_server
    server.command(f"DROP DATABASE IF EXISTS {DB} SYNC")
    _create(server, "events_local", old=range(500))
    server.command(
        f"CREATE TABLE {DB}.events AS {DB}.events_local "
        f"ENGINE = Distributed(test_shard_localhost, {DB}, events_local)"
    )
    tables = _user_tables(server)
    with pytest.raises(ConfigError) as refused:
        _load(server, _chunks("new", range(1000, 2000)), _spec("events", mode), load_id="A")
    message = str(refused.value)
    assert "Distributed" in message
    assert "events_local" in message  # what to load instead
    _assert_exactly(server, list(range(500)), "events_local")
    assert _user_tables(server) == tables


ODD_TARGETS = {
    "Merge": f"ENGINE = Merge({DB}, '^events_local$')",
    "Buffer": f"ENGINE = Buffer({DB}, events_local, 1, 10, 100, 10000, {10**6}, {10**7}, {10**8})",
    "View": "",
}


@pytest.mark.parametrize("engine", sorted(ODD_TARGETS))
def test_a_merge_buffer_or_view_target_is_refused_before_writing(
    clickhouse: ClickHouseResource, engine: str
) -> None:
    """Partition operations apply to MergeTree tables only: other targets are named and refused."""
    _create(clickhouse, "events_local", old=range(500))
    if engine == "View":
        clickhouse.command(f"CREATE VIEW {DB}.events AS SELECT * FROM {DB}.events_local")
    else:
        clickhouse.command(f"CREATE TABLE {DB}.events AS {DB}.events_local {ODD_TARGETS[engine]}")
    tables = _user_tables(clickhouse)
    with pytest.raises(ConfigError) as refused:
        _load(clickhouse, _chunks("new", range(1000, 2000)), _spec("events"), load_id="A")
    assert engine in str(refused.value)
    _assert_exactly(clickhouse, list(range(500)), "events_local")
    assert _count_sum(clickhouse, "events") == (500, sum(range(500)))
    assert _user_tables(clickhouse) == tables


# --- load identity --------------------------------------------------------------------------


def test_identical_rows_of_a_new_load_are_new_data(clickhouse: ClickHouseResource) -> None:
    """A new run appending the same rows was skipped by a content fingerprint; identity decides."""
    _create(clickhouse, old=None)
    ids = list(range(1000))
    run_1 = _chunks("run-1", range(1000))
    _load(clickhouse, run_1, _spec(), load_id="A", run_id="run-1")
    _load(clickhouse, _chunks("run-2", range(1000)), _spec(), load_id="B", run_id="run-2")
    _assert_exactly(clickhouse, ids + ids)
    _load(clickhouse, run_1, _spec(), load_id="A", run_id="run-1")  # load A again
    _load(clickhouse, run_1, _spec(), load_id="A", run_id="run-1-reexecution")
    _assert_exactly(clickhouse, ids + ids)
    assert _work_tables(clickhouse) == []


def test_load_id_defaults_to_the_dataset_id(clickhouse: ClickHouseResource) -> None:
    """Without a load_id, the chunks' dataset_id is the identity: a retry loads nothing more."""
    _create(clickhouse, old=None)
    chunks = _chunks("run-1", range(1000))
    for _ in range(2):
        with clickhouse.get_client() as client:
            load_chunkset(client, chunks, _spec(), exclusive=clickhouse.is_embedded)
    _assert_exactly(clickhouse, list(range(1000)))
    _load(clickhouse, chunks, _spec(), load_id=chunks.dataset_id)
    _assert_exactly(clickhouse, list(range(1000)))
