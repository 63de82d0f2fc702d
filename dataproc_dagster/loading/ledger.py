"""The load ledger: an append-only state machine per (target table, dataset), ``_dataproc_loads``.

Every load writes a row when it changes state; the row with the highest ``seq`` of a
(target, dataset_id) is its current state::

    staging -> staged -> publishing -> published
        \\---------\\-----------\\-----> abandoned

The next load of a target reads the unfinished entries of dead loads and settles them (see
:func:`recover_target`): an entry whose swap did not happen is undone (its tables dropped), one
whose swap happened is marked published. Nothing here imports Dagster: the caller passes what it
knows about runs as plain values and callables.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from clickhouse_connect.driver.client import Client

from dataproc_dagster.clickhouse.sql import qualified_name, quote_identifier, scalar

LEDGER_TABLE = "_dataproc_loads"


class LoadState(StrEnum):
    """Where one load of one dataset into one table stands."""

    STAGING = "staging"
    STAGED = "staged"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    ABANDONED = "abandoned"


STAGING, STAGED, PUBLISHING, PUBLISHED, ABANDONED = LoadState
FINAL_STATES = (PUBLISHED, ABANDONED)
# An unfinished entry whose owner cannot be checked (another host, against a server) counts as
# dead when it has not been touched for this long; a live load renews it while it stages.
LEASE_SECONDS = 300.0
HEARTBEAT_SECONDS = 60.0
STAGE_PREFIX = "_stage_"
SHADOW_PREFIX = "_shadow_"
KILL_ENV = "DATAPROC_TEST_KILL_AT"
COMMENT_MARK = "dataproc-load:"

# In the order read_entries selects them: the first ten are text.
_COLUMNS: tuple[str, ...] = (
    "target",
    "dataset_id",
    "mode",
    "run_id",
    "state",
    "stage",
    "shadow",
    "swap_marker",
    "target_comment",
    "fingerprint",
    "rows",
    "owner",
    "note",
    "seq",
)
# Columns added to a ledger created before the state machine: its rows are published loads.
_NEW_COLUMNS: tuple[str, ...] = (
    "run_id String DEFAULT ''",
    "state LowCardinality(String) DEFAULT 'published'",
    "stage String DEFAULT ''",
    "shadow String DEFAULT ''",
    "swap_marker String DEFAULT ''",
    "target_comment String DEFAULT ''",
    "fingerprint String DEFAULT ''",
    "owner String DEFAULT ''",
    "note String DEFAULT ''",
    "seq UInt64 DEFAULT 0",
    "updated_at DateTime64(3, 'UTC') DEFAULT now64(3)",
)
_seq_lock = threading.Lock()
_last_seq = 0


@dataclass(frozen=True)
class LedgerEntry:
    """The current state of one load of one dataset into one table."""

    target: str
    dataset_id: str
    mode: str
    run_id: str
    state: LoadState
    stage: str = ""
    shadow: str = ""
    swap_marker: str = ""
    target_comment: str = ""
    fingerprint: str = ""
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
    """Create the ledger, or add the state-machine columns to a ledger of an older version."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    table = qualified_name(LEDGER_TABLE, database)
    client.command(
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "target String, dataset_id String, mode String, rows UInt64, "
        "loaded_at DateTime64(3, 'UTC') DEFAULT now64(3), "
        + ", ".join(_NEW_COLUMNS)
        + ") ENGINE = MergeTree ORDER BY (target, dataset_id)"
    )
    have = {
        row[0]
        for row in client.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}",
            parameters={"db": database, "t": LEDGER_TABLE},
        ).result_rows
    }
    for column in _NEW_COLUMNS:
        if column.split(" ", 1)[0] not in have:
            client.command(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}")


def write_entry(client: Client, database: str, entry: LedgerEntry) -> None:
    """Append ``entry`` as the newest row of its (target, dataset_id)."""
    values = [
        entry.target,
        entry.dataset_id,
        entry.mode,
        entry.run_id,
        entry.state.value,
        entry.stage,
        entry.shadow,
        entry.swap_marker,
        entry.target_comment,
        entry.fingerprint,
        entry.rows,
        entry.owner or this_owner(),
        entry.note,
        _next_seq(),
    ]
    client.insert(LEDGER_TABLE, [values], column_names=list(_COLUMNS), database=database)


def read_entries(
    client: Client, database: str, target: str | None = None, dataset_id: str | None = None
) -> list[LedgerEntry]:
    """The current state of every load of ``target`` (all targets when ``None``), oldest first."""
    where = ["1"]
    params: dict[str, str] = {}
    if target is not None:
        where.append("target = {t:String}")
        params["t"] = target
    if dataset_id is not None:
        where.append("dataset_id = {d:String}")
        params["d"] = dataset_id
    rows = client.query(
        "SELECT target, dataset_id, mode, run_id, state, stage, shadow, swap_marker, "
        "target_comment, fingerprint, rows, owner, note, "
        "dateDiff('millisecond', updated_at, now64(3)) / 1000.0, seq "
        f"FROM {qualified_name(LEDGER_TABLE, database)} WHERE {' AND '.join(where)} "
        "ORDER BY seq DESC LIMIT 1 BY target, dataset_id",
        parameters=params,
    ).result_rows
    entries = [
        LedgerEntry(
            target=str(row[0]),
            dataset_id=str(row[1]),
            mode=str(row[2]),
            run_id=str(row[3]),
            state=LoadState(row[4]),
            stage=str(row[5]),
            shadow=str(row[6]),
            swap_marker=str(row[7]),
            target_comment=str(row[8]),
            fingerprint=str(row[9]),
            rows=int(row[10]),
            owner=str(row[11]),
            note=str(row[12]),
            age_seconds=float(row[13]),
        )
        for row in rows
    ]
    return entries[::-1]


def latest_published(client: Client, database: str, target: str) -> LedgerEntry | None:
    """The entry of ``target`` most recently marked published (``None`` when there is none)."""
    published = [e for e in read_entries(client, database, target) if e.state == PUBLISHED]
    return published[-1] if published else None


def _table_field(client: Client, database: str, table: str, column: str) -> str | None:
    rows = client.query(
        f"SELECT toString({column}) FROM system.tables "
        "WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    return str(rows[0][0]) if rows else None


def _set_comment(client: Client, database: str, table: str, comment: str) -> None:
    literal = comment.replace("\\", "\\\\").replace("'", "\\'")
    client.command(f"ALTER TABLE {qualified_name(table, database)} MODIFY COMMENT '{literal}'")


def mark_for_swap(client: Client, database: str, shadow: str, token: str) -> tuple[str, str]:
    """Give the shadow an identity the target will carry after the swap.

    Returns (marker, the shadow's original comment). In an Atomic database the marker is the
    shadow's uuid (``EXCHANGE TABLES`` swaps names, each table keeps its uuid). In a database
    without table uuids (the embedded engine's ``default``, engine Overlay) it is a table
    comment set on the shadow, travelling with it through the swap; the original comment is
    restored once the load is recorded as published.
    """
    uuid = _table_field(client, database, shadow, "uuid") or ""
    if uuid.strip("0-"):
        return f"uuid:{uuid}", ""
    original = _table_field(client, database, shadow, "comment") or ""
    marker = f"{COMMENT_MARK}{token}"
    _set_comment(client, database, shadow, marker)
    return f"comment:{marker}", original


def swap_happened(client: Client, database: str, entry: LedgerEntry) -> bool:
    """Whether the target is now the table that was the shadow of ``entry``."""
    kind, _, value = entry.swap_marker.partition(":")
    if not value:
        return False
    column = "uuid" if kind == "uuid" else "comment"
    return _table_field(client, database, entry.target, column) == value


def restore_comment(client: Client, database: str, entry: LedgerEntry) -> None:
    """Put back the target's comment replaced by a swap marker (no-op for uuid markers)."""
    kind, _, value = entry.swap_marker.partition(":")
    if kind == "comment" and _table_field(client, database, entry.target, "comment") == value:
        _set_comment(client, database, entry.target, entry.target_comment)


def owner_is_dead(entry: LedgerEntry, *, exclusive: bool) -> bool:
    """Whether the process that wrote ``entry`` can no longer be working on it.

    ``exclusive``: the caller holds the embedded engine's directory lock and has not written its
    own entry yet, so no load is running: every unfinished entry is dead. Otherwise an owner on this
    host is dead when its pid is gone, and any other owner when its lease ran out.
    """
    if exclusive:
        return True
    if entry.owner == this_owner():
        return entry.age_seconds > LEASE_SECONDS  # another thread of this process may run it
    host, _, pid = entry.owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    return entry.age_seconds > LEASE_SECONDS


def _drop(client: Client, database: str, table: str) -> None:
    if table:
        client.command(f"DROP TABLE IF EXISTS {qualified_name(table, database)} SYNC")


def settle(client: Client, database: str, entry: LedgerEntry, note: str) -> str:
    """Finish or undo an unfinished load whose process is gone; return what was done.

    The swap is the only step that changes the target. When the target now carries the marker
    the shadow had before the swap (:func:`mark_for_swap`), the swap happened: the entry is
    published and the table under the shadow's name (the old data) is dropped. Otherwise the
    target is as it was: the stage and the shadow are dropped and the entry is abandoned.
    """
    swapped = entry.state == PUBLISHING and swap_happened(client, database, entry)
    if swapped:
        write_entry(client, database, entry.moved(PUBLISHED, owner="", note=note))
        restore_comment(client, database, entry)
        outcome = "published (its swap had happened)"
    else:
        outcome = "undone (the table was not changed)"
    for table in {entry.stage, entry.shadow} - {entry.target}:
        _drop(client, database, table)
    if not swapped:
        write_entry(client, database, entry.moved(ABANDONED, owner="", note=note))
    return outcome


def _orphan_pattern(target: str) -> re.Pattern[str]:
    name = re.escape(target)
    return re.compile(rf"^(?:{STAGE_PREFIX}|{SHADOW_PREFIX}){name}_[0-9a-f]{{12}}$")


def work_tables(client: Client, database: str) -> list[tuple[str, float | None, int]]:
    """Staging and shadow tables of ``database``: (name, age in seconds, rows).

    The age is that of the table's metadata or, in a database that does not keep it (engine
    Overlay reports 1970), of its newest part; ``None`` when neither is known.
    """
    rows = client.query(
        "SELECT name, if(metadata_modification_time > toDateTime(0), "
        "dateDiff('second', metadata_modification_time, now()), NULL), ifNull(total_rows, 0) "
        "FROM system.tables WHERE database = {db:String} "
        "AND (startsWith(name, {s:String}) OR startsWith(name, {h:String})) ORDER BY name",
        parameters={"db": database, "s": STAGE_PREFIX, "h": SHADOW_PREFIX},
    ).result_rows
    parts: dict[str, int] = {
        str(table): int(age)
        for table, age in client.query(
            "SELECT table, dateDiff('second', max(modification_time), now()) FROM system.parts "
            "WHERE database = {db:String} AND active GROUP BY table",
            parameters={"db": database},
        ).result_rows
    }
    found: list[tuple[str, float | None, int]] = []
    for name, age, count in rows:
        known = age if age is not None else parts.get(name)
        found.append((name, None if known is None else float(known), int(count)))
    return found


def recover_target(
    client: Client,
    database: str,
    target: str,
    *,
    exclusive: bool,
    keep: str = "",
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """Settle the dead loads of ``target`` and drop its orphan work tables.

    Args:
        client: Open client.
        database: The target's database (holds the ledger).
        target: Target table name.
        exclusive: The caller holds the embedded engine's lock (see :func:`owner_is_dead`).
        keep: dataset_id of the caller's own load, left alone.
        log: Receives one line per action.

    Returns:
        What was done, one line per action.
    """
    ensure_ledger(client, database)
    done: list[str] = []
    live_tables: set[str] = set()
    comment = _table_field(client, database, target, "comment") or ""
    for entry in read_entries(client, database, target):
        if entry.state == PUBLISHED and entry.swap_marker == f"comment:{comment}":
            restore_comment(client, database, entry)  # it died just after publishing
        if entry.state in FINAL_STATES:
            continue
        if entry.dataset_id == keep or not owner_is_dead(entry, exclusive=exclusive):
            live_tables.update({entry.stage, entry.shadow})
            continue
        outcome = settle(
            client,
            database,
            entry,
            note=f"settled by the next load ({this_owner()}): owner {entry.owner} is gone",
        )
        done.append(
            f"load of {entry.dataset_id} into {database}.{target} (run {entry.run_id}, state "
            f"{entry.state}, owner {entry.owner}) was left unfinished: {outcome}"
        )
    pattern = _orphan_pattern(target)
    for name, age, rows in work_tables(client, database):
        if not pattern.match(name) or name in live_tables:
            continue
        if exclusive or (age is not None and age > LEASE_SECONDS):
            _drop(client, database, name)
            done.append(f"dropped orphan table {database}.{name} ({rows} rows)")
    if log is not None:
        for line in done:
            log(line)
    return done


def fingerprint(client: Client, database: str, table: str, columns: list[str]) -> str:
    """``count:sum(cityHash64(row))`` of a table's ``columns``, computed by the engine."""
    if not columns:
        return ""
    row = ", ".join(quote_identifier(c) for c in columns)
    rows = client.query(
        f"SELECT count(), sum(cityHash64(tuple({row}))) FROM {qualified_name(table, database)}"
    ).result_rows
    count, total = rows[0]
    return f"{int(count)}:{int(total or 0)}"


def unfinished(client: Client, database: str) -> list[LedgerEntry]:
    """Every entry of ``database``'s ledger that is not published or abandoned."""
    # Read-only: a ledger of an older version (no ``state`` column) holds only published loads.
    if not scalar(
        client,
        "SELECT count() FROM system.columns WHERE database = {db:String} AND table = {t:String} "
        "AND name = 'state'",
        {"db": database, "t": LEDGER_TABLE},
    ):
        return []
    return [e for e in read_entries(client, database) if e.state not in FINAL_STATES]
