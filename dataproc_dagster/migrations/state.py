"""The state table: one append-only log of migration events and lock claims.

Every change is a new row (no mutations, no FINAL): the state of a version is its newest row,
ordered by the server's ``recorded_at``. Lock claims live in the same table (``kind = 'lock'``):
the oldest live claim holds the lock, claims expire, and a holder refreshes its claim.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from dataproc_dagster.clickhouse.sql import qualified_name, quote_identifier
from dataproc_dagster.migrations.errors import MigrationLockError
from dataproc_dagster.migrations.status import MigrationState

_COLUMNS = (
    "event_id",
    "kind",
    "version",
    "name",
    "checksum",
    "status",
    "operation",
    "statements",
    "failed_statement",
    "error",
    "applied_at",
    "duration_ms",
    "owner",
    "expires_at",
    "seq",
)
_last_seq = 0
_seq_guard = threading.Lock()


class _Sql(str):
    """A value inserted as an SQL expression, evaluated by the server."""


def _next_seq() -> int:
    # Breaks ties between rows of the same nanosecond, in the order this process wrote them.
    global _last_seq
    with _seq_guard:  # the lease thread writes claims too
        _last_seq = max(_last_seq + 1, time.time_ns())
        return _last_seq


@dataclass(frozen=True)
class MigrationRow:
    """The newest recorded state of one version."""

    version: int
    name: str
    checksum: str
    status: MigrationState
    operation: str
    statements: int
    failed_statement: int
    error: str
    applied_at: datetime | None
    duration_ms: int
    recorded_at: datetime


class StateTable:
    """Reads and writes the state table through an open clickhouse-connect client.

    Args:
        client: An open client (the caller owns it).
        database: Database of the table.
        table: Table name.
        cluster: When set, the table is created ``ON CLUSTER`` as ReplicatedMergeTree.
    """

    def __init__(self, client: Client, *, database: str, table: str, cluster: str = "") -> None:
        self.client = client
        self.database = database
        self.table = table
        self.cluster = cluster
        self.qualified = qualified_name(table, database)

    def exists(self) -> bool:
        """True when the state table exists."""
        rows = self.client.query(
            "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(t)s",
            parameters={"db": self.database, "t": self.table},
        ).result_rows
        return bool(rows and rows[0][0])

    def ensure(self) -> None:
        """Create the database and the table if missing."""
        on_cluster = f" ON CLUSTER {quote_identifier(self.cluster)}" if self.cluster else ""
        engine = "ReplicatedMergeTree" if self.cluster else "MergeTree"
        self.client.command(
            f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.database)}{on_cluster}"
        )
        self.client.command(
            f"""CREATE TABLE IF NOT EXISTS {self.qualified}{on_cluster} (
                event_id UUID,
                kind LowCardinality(String),
                version UInt32,
                name String,
                checksum String,
                status LowCardinality(String),
                operation LowCardinality(String),
                statements UInt32,
                failed_statement UInt32,
                error String,
                applied_at Nullable(DateTime64(3, 'UTC')),
                duration_ms UInt64,
                owner String,
                expires_at Nullable(DateTime64(3, 'UTC')),
                seq UInt64,
                recorded_at DateTime64(9, 'UTC') DEFAULT now64(9, 'UTC')
            ) ENGINE = {engine} ORDER BY (kind, version, recorded_at)"""
        )

    def _insert(self, **values: Any) -> None:
        row = {column: values.get(column) for column in _COLUMNS}
        row["event_id"] = str(uuid.uuid4())  # rows never repeat, so no insert dedup drops one
        row["seq"] = _next_seq()
        for column in ("name", "checksum", "status", "operation", "error", "owner"):
            row[column] = row[column] or ""
        for column in ("version", "statements", "failed_statement", "duration_ms"):
            row[column] = int(row[column] or 0)
        placeholders = ", ".join(
            "NULL" if row[c] is None else str(row[c]) if isinstance(row[c], _Sql) else f"%({c})s"
            for c in _COLUMNS
        )
        self.client.command(
            f"INSERT INTO {self.qualified} ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
            parameters={c: v for c, v in row.items() if v is not None and not isinstance(v, _Sql)},
            settings={"async_insert": 0},
        )

    # Migrations

    def record(
        self,
        *,
        version: int,
        name: str,
        checksum: str,
        status: MigrationState,
        operation: str,
        statements: int = 0,
        failed_statement: int = 0,
        error: str = "",
        applied: bool = False,
        duration_ms: int = 0,
    ) -> None:
        """Append the new state of a version."""
        self._insert(
            kind="migration",
            version=version,
            name=name,
            checksum=checksum,
            status=str(status),
            operation=operation,
            statements=statements,
            failed_statement=failed_statement,
            error=error[:4000],
            applied_at=_Sql("now64(3, 'UTC')") if applied else None,
            duration_ms=duration_ms,
        )

    def migrations(self) -> dict[int, MigrationRow]:
        """The newest row of each version; empty when the table does not exist yet."""
        if not self.exists():
            return {}
        result = self.client.query(
            f"""SELECT version,
                       argMax(tuple(name, checksum, status, operation, statements,
                                    failed_statement, error, applied_at, duration_ms),
                              (recorded_at, seq)) AS last,
                       max(recorded_at)
                FROM {self.qualified} WHERE kind = 'migration' GROUP BY version ORDER BY version"""
        )
        rows: dict[int, MigrationRow] = {}
        for version, last, recorded_at in result.result_rows:
            name, checksum, status, operation, statements, failed, error, applied, ms = last
            rows[int(version)] = MigrationRow(
                version=int(version),
                name=name,
                checksum=checksum,
                status=MigrationState(status),
                operation=operation,
                statements=int(statements),
                failed_statement=int(failed),
                error=error,
                applied_at=applied,
                duration_ms=int(ms),
                recorded_at=recorded_at,
            )
        return rows

    def has_history(self) -> bool:
        """True when any migration event was ever recorded."""
        if not self.exists():
            return False
        rows = self.client.query(
            f"SELECT count() FROM {self.qualified} WHERE kind = 'migration'"
        ).result_rows
        return bool(rows[0][0])

    # Lock

    def claim_lock(self, owner: str, ttl: float) -> None:
        """Append (or refresh) ``owner``'s claim, valid for ``ttl`` seconds."""
        self._insert(kind="lock", status="claim", owner=owner, expires_at=_in_seconds(ttl))

    def release_lock(self, owner: str) -> None:
        """Withdraw ``owner``'s claim."""
        self._insert(kind="lock", status="release", owner=owner, expires_at=_in_seconds(0))

    def unreleased_claims(self) -> list[tuple[str, datetime | None, bool]]:
        """Every owner whose last lock row is a claim: (owner, expiry, still valid), oldest
        first. An owner that died without releasing stays here, with ``still valid`` false
        once its lease ran out."""
        if not self.exists():
            return []
        rows = self.client.query(
            f"""SELECT owner, min(recorded_at) AS first_claim,
                       argMax(status, (recorded_at, seq)) AS last_status,
                       argMax(expires_at, (recorded_at, seq)) AS expiry,
                       expiry > now64(3, 'UTC') AS valid
                FROM {self.qualified} WHERE kind = 'lock'
                GROUP BY owner
                HAVING last_status = 'claim'
                ORDER BY first_claim, owner"""
        ).result_rows
        return [(str(owner), expiry, bool(valid)) for owner, _, _, expiry, valid in rows]

    def lock_holder(self) -> tuple[str, datetime] | None:
        """The live claim that holds the lock (the oldest first claim), with its expiry."""
        rows = self.client.query(
            f"""SELECT owner, min(recorded_at) AS first_claim,
                       argMax(status, (recorded_at, seq)) AS last_status,
                       argMax(expires_at, (recorded_at, seq)) AS expiry
                FROM {self.qualified} WHERE kind = 'lock'
                GROUP BY owner
                HAVING last_status = 'claim' AND expiry > now64(3, 'UTC')
                ORDER BY first_claim, owner LIMIT 1"""
        ).result_rows
        if not rows:
            return None
        return str(rows[0][0]), rows[0][3]

    def acquire_lock(self, owner: str, *, ttl: float, timeout: float, settle: float) -> None:
        """Wait until ``owner`` holds the lock.

        ``settle`` seconds pass between writing the claim and reading the claims back, so that
        a claim a competitor wrote just before ours has become visible.

        Raises:
            MigrationLockError: When another live claim still holds it after ``timeout`` seconds.
        """
        self.claim_lock(owner, ttl)
        deadline = time.monotonic() + timeout
        while True:
            if settle:
                time.sleep(settle)
            holder = self.lock_holder()
            if holder is not None and holder[0] == owner:
                return
            if time.monotonic() >= deadline:
                self.release_lock(owner)
                who, expiry = holder if holder else ("an unknown runner", None)
                until = f" until {expiry:%Y-%m-%d %H:%M:%S} UTC" if expiry else ""
                raise MigrationLockError(
                    f"another migration runner ({who}) holds the lock{until}; waited "
                    f"{timeout:.0f} s",
                    source=self.qualified,
                    fix="wait for that run to finish and retry; if it died, its claim expires "
                    "by itself MIGRATIONS_LOCK_TTL seconds after its last renewal",
                )
            time.sleep(0.5)


def _in_seconds(seconds: float) -> _Sql:
    # The server's clock decides expiry, so runners on hosts with skewed clocks agree.
    return _Sql(f"now64(3, 'UTC') + toIntervalMillisecond({int(seconds * 1000)})")


def new_owner(run: str = "") -> str:
    """A lock owner id: host, process, a random suffix and the Dagster run, if any."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return f"{owner}:{run}" if run else owner


@dataclass(frozen=True)
class Owner:
    """Who wrote a lock claim, read back from its owner id."""

    host: str
    pid: int
    run: str

    @classmethod
    def parse(cls, owner: str) -> Owner:
        """Read ``host:pid:suffix[:run]``; unknown parts stay empty (pid 0)."""
        parts = owner.split(":", 3)
        host = parts[0] if parts else ""
        pid = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        run = parts[3] if len(parts) > 3 else ""
        return cls(host=host, pid=pid, run=run)

    @property
    def on_this_host(self) -> bool:
        """True when the claim was written by a process of this machine."""
        return self.host == socket.gethostname()

    def process_alive(self) -> bool | None:
        """Whether its process still runs; ``None`` when it ran on another host."""
        if not self.on_this_host or self.pid <= 0:
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        """``host H, pid P, run R``."""
        text = f"host {self.host or '?'}, pid {self.pid or '?'}"
        return f"{text}, run {self.run}" if self.run else text


class LeaseKeeper:
    """Renews a lock claim every ``interval`` seconds from a thread with its own client, so
    a live runner keeps the lock through a long statement and a dead one loses it within
    ``ttl`` seconds.

    Args:
        open_client: Returns a context manager yielding a new client (not the runner's).
        state: The runner's state table (database, table and cluster are reused).
        owner: The claim to renew.
        ttl: Lease length, seconds.
        interval: Seconds between renewals (below ``ttl``).
        warn: Called with a message when a renewal fails.
    """

    def __init__(
        self,
        open_client: Callable[[], AbstractContextManager[Client]],
        state: StateTable,
        owner: str,
        *,
        ttl: float,
        interval: float,
        warn: Callable[[str], None],
    ) -> None:
        self._open_client = open_client
        self._state = state
        self._owner = owner
        self._ttl = ttl
        self._interval = interval
        self._warn = warn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="migration-lock-lease", daemon=True)
        self.renewals = 0

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=max(self._interval, 5.0) + 5.0)

    def _run(self) -> None:
        try:
            with self._open_client() as client:
                state = StateTable(
                    client,
                    database=self._state.database,
                    table=self._state.table,
                    cluster=self._state.cluster,
                )
                while not self._stop.wait(self._interval):
                    try:
                        state.claim_lock(self._owner, self._ttl)
                        self.renewals += 1
                    except Exception as exc:  # the next renewal may succeed
                        self._warn(f"could not renew the migration lock: {exc}")
        except Exception as exc:
            self._warn(f"could not renew the migration lock: {exc}")
