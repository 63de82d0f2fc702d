"""The load ledger ``_dataproc_loads``: one current row per load, read by key.

A *load* has an identity (:func:`load_key`): the target table and the load id, which the
Dagster layer makes of the root run and the step (so a step's retries and every re-execution
are the same load) and, for sources that read a window, that window. Each change of state
inserts a row; the table is a ``ReplacingMergeTree(seq) ORDER BY (target, load_key)``, so a
load's rows collapse to the newest, and a load reads exactly its own rows through the primary
key, whatever the length of the history. Finished loads expire after
:data:`RETENTION_DAYS`::

    staging -> staged -> publishing -> published
        \\---------\\-----------------> abandoned

A load's staging table exists from ``staging`` until it is ``published`` or ``abandoned``; the
unfinished loads of a table are therefore found from its work tables (system.tables), never by
scanning the history. Nothing here imports Dagster.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from clickhouse_connect.driver.client import Client

from dataproc_dagster.clickhouse.sql import qualified_name, quote_identifier
from dataproc_dagster.loading.targets import table_engine

LEDGER_TABLE = "_dataproc_loads"
# Where a ledger of the previous shape (append-only MergeTree, one row per state) is kept.
LEGACY_LEDGER_TABLE = "_dataproc_loads_v1"
RETENTION_DAYS = 90


class LoadState(StrEnum):
    """Where one load into one table stands."""

    STAGING = "staging"
    STAGED = "staged"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    ABANDONED = "abandoned"


STAGING, STAGED, PUBLISHING, PUBLISHED, ABANDONED = LoadState
FINAL_STATES = (PUBLISHED, ABANDONED)
# A stage that never reached publishing, whose owner cannot be checked (another host, against a
# server), counts as dead when its entry was not renewed for this long; a live load renews it
# while it stages. Publishing needs no such guess: it is finished by whoever comes next.
LEASE_SECONDS = 300.0
HEARTBEAT_SECONDS = 60.0
STAGE_PREFIX = "_stage_"
# Work tables of the previous publishing scheme; dropped like orphans.
SHADOW_PREFIX = "_shadow_"
KEY_LENGTH = 16
KILL_ENV = "DATAPROC_TEST_KILL_AT"
COMMENT_MARK = "dataproc-load:"

_COLUMNS: tuple[str, ...] = (
    "target",
    "load_key",
    "load_id",
    "mode",
    "run_id",
    "state",
    "stage",
    "swap_marker",
    "target_comment",
    "rows",
    "owner",
    "note",
    "seq",
)
_seq_lock = threading.Lock()
_last_seq = 0


def load_key(database: str, table: str, load_id: str) -> str:
    """The short, stable key of a load: names its staging table and its ledger row."""
    digest = hashlib.sha1(f"{database}.{table}|{load_id}".encode()).hexdigest()
    return digest[:KEY_LENGTH]


def stage_table_name(table: str, key: str) -> str:
    """The staging table of the load ``key`` into ``table`` (at most 200 characters)."""
    return f"{STAGE_PREFIX}{table[:150]}_{key}"


@dataclass(frozen=True)
class LedgerEntry:
    """The current state of one load into one table."""

    target: str
    load_key: str
    load_id: str
    mode: str
    run_id: str
    state: LoadState
    stage: str = ""
    swap_marker: str = ""
    target_comment: str = ""
    rows: int = 0
    owner: str = ""
    note: str = ""
    age_seconds: float = 0.0

    def moved(self, state: LoadState, **changes: Any) -> LedgerEntry:
        """The same entry in another state."""
        return replace(self, state=state, **changes)


def this_owner() -> str:
    """``host:pid`` of this process, recorded with every ledger row it writes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def kill_point_for_tests(name: str) -> None:
    """Kill this process group with SIGKILL at a named instant, for crash tests only.

    Armed by ``DATAPROC_TEST_KILL_AT=<name>``; the test starts the run in its own session so that
    only the run dies (as with ``kill -9`` of ``dagster job execute``).
    """
    if os.environ.get(KILL_ENV) == name:
        os.killpg(os.getpgrp(), signal.SIGKILL)


def _next_seq() -> int:
    global _last_seq
    with _seq_lock:
        _last_seq = max(time.time_ns(), _last_seq + 1)
        return _last_seq


def ensure_ledger(client: Client, database: str) -> None:
    """Create the ledger; a ledger of the previous shape is kept as :data:`LEGACY_LEDGER_TABLE`."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    table = qualified_name(LEDGER_TABLE, database)
    ledger = table_engine(client, database, LEDGER_TABLE)
    if ledger is not None and ledger.engine != "ReplacingMergeTree":
        legacy = qualified_name(LEGACY_LEDGER_TABLE, database)
        client.command(f"RENAME TABLE {table} TO {legacy}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "target String, load_key String, load_id String, mode LowCardinality(String), "
        "run_id String, state LowCardinality(String), stage String, swap_marker String, "
        "target_comment String, rows UInt64, owner String, note String, seq UInt64, "
        "updated_at DateTime64(3, 'UTC') DEFAULT now64(3)"
        ") ENGINE = ReplacingMergeTree(seq) ORDER BY (target, load_key) "
        f"TTL toDateTime(updated_at) + INTERVAL {RETENTION_DAYS} DAY "
        "DELETE WHERE state IN ('published', 'abandoned')"
    )


def write_entry(client: Client, database: str, entry: LedgerEntry) -> None:
    """Record ``entry`` as the newest state of its load."""
    values = [
        entry.target,
        entry.load_key,
        entry.load_id,
        entry.mode,
        entry.run_id,
        entry.state.value,
        entry.stage,
        entry.swap_marker,
        entry.target_comment,
        entry.rows,
        entry.owner or this_owner(),
        entry.note,
        _next_seq(),
    ]
    # Synchronous: the row must be visible to every other process before the next step.
    client.insert(
        LEDGER_TABLE,
        [values],
        column_names=list(_COLUMNS),
        database=database,
        settings={"async_insert": 0},
    )


def _entries(
    client: Client, database: str, where: str, params: dict[str, Any]
) -> list[LedgerEntry]:
    sql = (
        "SELECT target, load_key, load_id, mode, run_id, state, stage, swap_marker, "
        "target_comment, rows, owner, note, "
        "dateDiff('millisecond', updated_at, now64(3)) / 1000.0, seq "
        f"FROM {qualified_name(LEDGER_TABLE, database)} WHERE "
        + where
        + " ORDER BY seq DESC LIMIT 1 BY target, load_key"
    )
    rows = client.query(sql, parameters=params).result_rows
    return [
        LedgerEntry(
            target=str(row[0]),
            load_key=str(row[1]),
            load_id=str(row[2]),
            mode=str(row[3]),
            run_id=str(row[4]),
            state=LoadState(row[5]),
            stage=str(row[6]),
            swap_marker=str(row[7]),
            target_comment=str(row[8]),
            rows=int(row[9]),
            owner=str(row[10]),
            note=str(row[11]),
            age_seconds=float(row[12]),
        )
        for row in rows
    ]


def read_entry(client: Client, database: str, target: str, key: str) -> LedgerEntry | None:
    """The current state of the load ``key`` into ``target`` (a primary-key read)."""
    found = _entries(
        client, database, "target = {t:String} AND load_key = {k:String}", {"t": target, "k": key}
    )
    return found[0] if found else None


def read_entries_by_keys(
    client: Client, database: str, keys: list[str], target: str | None = None
) -> dict[str, LedgerEntry]:
    """The current state of each load in ``keys`` (of ``target``, when given), by key."""
    if not keys:
        return {}
    where = "load_key IN {keys:Array(String)}"
    params: dict[str, Any] = {"keys": keys}
    if target is not None:
        where = "target = {t:String} AND " + where
        params["t"] = target
    return {e.load_key: e for e in _entries(client, database, where, params)}


def read_entries(client: Client, database: str, target: str) -> list[LedgerEntry]:
    """Every load of ``target`` still in the ledger, oldest first (reads its whole history)."""
    found = _entries(client, database, "target = {t:String}", {"t": target})
    return found[::-1]


def owner_is_dead(entry: LedgerEntry, *, exclusive: bool, same_load: bool = False) -> bool:
    """Whether the process that staged ``entry`` can no longer be working on it.

    Only asked of loads that never reached ``publishing``. ``exclusive``: the caller holds the
    embedded engine's directory lock, so no other load is running. ``same_load``: the caller
    is an attempt of the same load, so an earlier attempt in this process is over. Otherwise an
    owner on this host is dead when its pid is gone, and any owner when its lease ran out.
    """
    if exclusive:
        return True
    if same_load and entry.owner == this_owner():
        return True  # an earlier attempt of the caller's own load, in this process: over
    host, _, pid = entry.owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    return entry.age_seconds > LEASE_SECONDS


def drop_work_table(client: Client, database: str, table: str) -> None:
    """Drop a work table at once, if it exists."""
    if table:
        client.command(f"DROP TABLE IF EXISTS {qualified_name(table, database)} SYNC")


_WORK_TABLE = re.compile(
    rf"^(?:{STAGE_PREFIX}|{SHADOW_PREFIX})(?P<table>.+)_(?P<key>[0-9a-f]{{12}}|[0-9a-f]{{16}})$"
)


@dataclass(frozen=True)
class WorkTable:
    """A staging table (or a shadow table of the previous scheme) found in a database."""

    name: str
    table: str
    key: str
    age_seconds: float | None
    rows: int

    @property
    def legacy(self) -> bool:
        """A work table of the previous publishing scheme (no ledger row of this version)."""
        return self.name.startswith(SHADOW_PREFIX) or len(self.key) != KEY_LENGTH


def work_tables(client: Client, database: str, target: str | None = None) -> list[WorkTable]:
    """Staging (and old shadow) tables of ``database``, of ``target`` only when given.

    The age is that of the table's metadata or, in a database that does not keep it (engine
    Overlay reports 1970), of its newest part; ``None`` when neither is known.
    """
    prefixes = [STAGE_PREFIX, SHADOW_PREFIX]
    if target is not None:
        prefixes = [f"{p}{target[:150]}_" for p in prefixes]
    rows = client.query(
        "SELECT name, if(metadata_modification_time > toDateTime(0), "
        "dateDiff('second', metadata_modification_time, now()), NULL), ifNull(total_rows, 0) "
        "FROM system.tables WHERE database = {db:String} "
        "AND (startsWith(name, {s:String}) OR startsWith(name, {h:String})) ORDER BY name",
        parameters={"db": database, "s": prefixes[0], "h": prefixes[1]},
    ).result_rows
    if not rows:
        return []
    parts: dict[str, int] = {
        str(table): int(age)
        for table, age in client.query(
            "SELECT table, dateDiff('second', max(modification_time), now()) FROM system.parts "
            "WHERE database = {db:String} AND active AND table IN {names:Array(String)} "
            "GROUP BY table",
            parameters={"db": database, "names": [str(r[0]) for r in rows]},
        ).result_rows
    }
    found: list[WorkTable] = []
    for name, age, count in rows:
        match = _WORK_TABLE.match(str(name))
        if match is None:
            continue
        known = age if age is not None else parts.get(str(name))
        found.append(
            WorkTable(
                name=str(name),
                table=match["table"],
                key=match["key"],
                age_seconds=None if known is None else float(known),
                rows=int(count),
            )
        )
    return found


def unfinished(client: Client, database: str) -> list[LedgerEntry]:
    """The loads of ``database`` whose staging table still exists and that are not finished."""
    ledger = table_engine(client, database, LEDGER_TABLE)
    if ledger is None or ledger.engine != "ReplacingMergeTree":
        return []
    keys = [w.key for w in work_tables(client, database) if not w.legacy]
    entries = read_entries_by_keys(client, database, keys)
    return [e for e in entries.values() if e.state not in FINAL_STATES]
