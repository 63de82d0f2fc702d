"""Typed results of the migration runner: the schema's status and what each command did.

The runner returns these frozen dataclasses; the command line, the Dagster checks and the
integrity check read their attributes. ``to_dict()`` gives the JSON the command line prints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

Command = Literal["up", "down", "repair", "baseline"]


class MigrationState(StrEnum):
    """The state of one migration version (recorded in the state table, or shown)."""

    PENDING = "pending"  # shown only: no row, or a reverted one
    RUNNING = "running"
    APPLIED = "applied"
    FAILED = "failed"
    BASELINE = "baseline"
    REVERTED = "reverted"  # rolled back with its down file, or marked pending by repair


APPLIED_STATES = (MigrationState.APPLIED, MigrationState.BASELINE)
DIRTY_STATES = (MigrationState.RUNNING, MigrationState.FAILED)


def label(version: int, name: str) -> str:
    """``NNNN_name``, the label of a migration in messages and results."""
    return f"{version:04d}_{name}"


@dataclass(frozen=True)
class MigrationFileStatus:
    """One migration file and the state of its version.

    Attributes:
        version: The file's version number.
        name: The name after the number.
        file: The up file's name.
        has_down: Whether a down file exists.
        status: ``pending``, ``running``, ``applied``, ``failed`` or ``baseline``.
        applied: Whether the version counts as applied (applied or baseline).
        checksum: The up file's checksum.
        checksum_ok: False when the file was edited after it was applied.
        applied_at: When it was applied (ISO text), or None.
        duration_ms: How long applying took, or None.
        statements: How many statements the up file holds.
    """

    version: int
    name: str
    file: str
    has_down: bool
    status: MigrationState
    applied: bool
    checksum: str
    checksum_ok: bool
    applied_at: str | None
    duration_ms: int | None
    statements: int

    def to_dict(self) -> dict[str, Any]:
        """The row as plain data (for ``--json``)."""
        return {**dataclasses.asdict(self), "status": self.status.value}


@dataclass(frozen=True)
class DirtyMigration:
    """A failed, interrupted or running migration (it blocks every command until repaired).

    Attributes:
        interrupted: For a ``running`` row: True when its runner died (no live runner claims
            the lock, or the row is seen under the lock), False while a live runner claims it;
            None when not determined.
    """

    version: int
    name: str
    status: MigrationState
    operation: str
    failed_statement: int
    statements: int
    error: str
    interrupted: bool | None = None

    @property
    def label(self) -> str:
        """``NNNN_name``."""
        return label(self.version, self.name)

    def describe(self) -> str:
        """One line saying what happened and what is unknown."""
        text = f"{self.label} ({self.operation})"
        if self.status == MigrationState.RUNNING:
            if self.interrupted:
                return (
                    f"migration {text} was interrupted: its runner stopped (killed, or lost its "
                    "connection) before recording a result, so which of its "
                    f"{self.statements} statement(s) took effect is unknown"
                )
            return f"migration {text} is running (another runner holds the lock)"
        return (
            f"migration {text} is failed at statement {self.failed_statement} of "
            f"{self.statements}: {self.error or 'no error recorded'}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The row as plain data (``interrupted`` only when determined)."""
        data = {**dataclasses.asdict(self), "status": self.status.value}
        if self.interrupted is None:
            del data["interrupted"]
        return data


@dataclass(frozen=True)
class LockHolder:
    """An unreleased claim on the migration lock.

    Attributes:
        owner: Who claims it (host, pid, run).
        alive: True, False, or None (unknown: another host with a valid lease).
        state: One line on the claim (alive, stale, lease expiry).
    """

    owner: str
    host: str
    pid: int
    run: str
    alive: bool | None
    state: str

    def to_dict(self) -> dict[str, Any]:
        """The claim as plain data."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MigrationStatus:
    """The schema's state: counts, dirty rows, edited and missing files, one row per file.

    Attributes:
        lock_holders: The lock's claimants; None when the command did not read them.
    """

    database: str
    folder: str
    executed_count: int
    pending_count: int
    failed_count: int
    failed: tuple[DirtyMigration, ...]
    checksum_mismatches: tuple[str, ...]
    missing_files: tuple[str, ...]
    current_version: int | None
    latest_version: int | None
    migrations: tuple[MigrationFileStatus, ...]
    lock_holders: tuple[LockHolder, ...] | None = None

    @property
    def pending_files(self) -> list[str]:
        """The files not applied yet, in version order."""
        return [m.file for m in self.migrations if m.status == MigrationState.PENDING]

    @property
    def pending_versions(self) -> set[int]:
        """The versions not applied yet."""
        return {m.version for m in self.migrations if m.status == MigrationState.PENDING}

    @property
    def clean(self) -> bool:
        """True when everything is applied and nothing is failed, edited or missing."""
        return not (
            self.pending_count or self.failed or self.checksum_mismatches or self.missing_files
        )

    def to_dict(self) -> dict[str, Any]:
        """The status as plain data (for ``--json``)."""
        data: dict[str, Any] = {
            "database": self.database,
            "folder": self.folder,
            "executed_count": self.executed_count,
            "pending_count": self.pending_count,
            "failed_count": self.failed_count,
            "failed": [f.to_dict() for f in self.failed],
            "checksum_mismatches": list(self.checksum_mismatches),
            "missing_files": list(self.missing_files),
            "current_version": self.current_version,
            "latest_version": self.latest_version,
            "migrations": [m.to_dict() for m in self.migrations],
        }
        if self.lock_holders is not None:
            data["lock_holders"] = [h.to_dict() for h in self.lock_holders]
        return data


@dataclass(frozen=True)
class PlannedStatement:
    """A statement a dry run would execute."""

    migration: str
    number: int
    sql: str

    def to_dict(self) -> dict[str, Any]:
        """The statement as plain data."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CommandResult:
    """What a command did (the migrations it touched) and the status after it.

    Attributes:
        command: ``up``, ``down``, ``repair`` or ``baseline``.
        done: Labels of the migrations applied, rolled back, repaired or baselined.
        status: The schema's status after the command.
        dry_run: ``up --dry-run``: nothing ran; ``statements`` lists what would.
        statements: The statements of a dry run.
        lock_holders: The lock's claimants seen by ``repair`` before it cleared them.
    """

    command: Command
    done: tuple[str, ...]
    status: MigrationStatus
    dry_run: bool = False
    statements: tuple[PlannedStatement, ...] = ()
    lock_holders: tuple[LockHolder, ...] = ()

    @property
    def verb(self) -> str:
        """The key naming ``done`` in the JSON output (``applied``, ``rolled_back``, ...)."""
        return _VERBS[self.command]

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data, as the command line prints it with ``--json``."""
        data: dict[str, Any] = {self.verb: list(self.done)}
        if self.command == "up":
            data["dry_run"] = self.dry_run
            data["statements"] = [s.to_dict() for s in self.statements]
        if self.command == "repair":
            data["lock_holders"] = [h.to_dict() for h in self.lock_holders]
        data["status"] = self.status.to_dict()
        return data


_VERBS: dict[str, str] = {
    "up": "applied",
    "down": "rolled_back",
    "repair": "repaired",
    "baseline": "baselined",
}


@dataclass(frozen=True)
class SchemaCheck:
    """The tables the applied migrations create, compared with the database.

    Attributes:
        tables: ``db.table`` -> its column names (None: created without a column list).
        problems: One line per missing table or column, or wrong type.
    """

    tables: dict[str, list[str] | None]
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The check as plain data."""
        return {"tables": self.tables, "problems": list(self.problems)}
