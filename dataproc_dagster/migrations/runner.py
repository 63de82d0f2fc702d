"""``ClickHouseMigrationManager``: status, apply, rollback, repair and baseline over SQL files.

Each command validates the whole folder first, takes the migration lock (a claim row in the
state table; on the embedded engine the directory lock already serialises processes), re-reads
the state under the lock and refuses to go on while a migration is failed ("dirty"), an applied
file was edited, or an applied version has no file any more.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from dataproc_dagster.clickhouse.connection import (
    ClickHouseConnection,
    HasConnection,
    as_connection,
)
from dataproc_dagster.core.settings import check_env_file, get_settings
from dataproc_dagster.migrations.config import MigrationSettings, default_migrations_dir
from dataproc_dagster.migrations.errors import (
    MigrationFailedError,
    MigrationFileError,
    MigrationStateError,
)
from dataproc_dagster.migrations.files import MigrationFile, discover_migrations, render
from dataproc_dagster.migrations.lock import MigrationLock
from dataproc_dagster.migrations.schema import expected_tables, schema_differences
from dataproc_dagster.migrations.state import (
    MigrationRow,
    StateTable,
)
from dataproc_dagster.migrations.status import (
    APPLIED_STATES,
    DIRTY_STATES,
    CommandResult,
    MigrationState,
    MigrationStatus,
    PlannedStatement,
    SchemaCheck,
    label,
)
from dataproc_dagster.migrations.summary import summarize

_logger = logging.getLogger(__name__)


class ClickHouseMigrationManager:
    """Runs the migration files of a folder against the ClickHouse of a resource.

    Args:
        clickhouse: A ClickHouse connection or resource (embedded chDB or a server); by
            default one built from the framework settings (``CLICKHOUSE_URL``, ...).
        folder: The migrations folder (default: ``MIGRATIONS_DIR`` or top-level ``migrations/``).
        settings: Table name, cluster and lock timings (default: read from the environment).
        log: Where progress messages go (default: this module's logger).
        run_id: The Dagster run driving this runner, recorded with its lock claim.
    """

    def __init__(
        self,
        clickhouse: ClickHouseConnection | HasConnection | None = None,
        *,
        folder: Path | str | None = None,
        settings: MigrationSettings | None = None,
        log: Callable[[str], None] | None = None,
        run_id: str = "",
    ) -> None:
        self.clickhouse = (
            as_connection(clickhouse)
            if clickhouse is not None
            else ClickHouseConnection.from_settings(get_settings(), with_password=True)
        )
        if settings is None:
            check_env_file()
        self.settings = settings or MigrationSettings()
        self.run_id = run_id
        self.folder = default_migrations_dir(
            Path(folder) if folder is not None else self.settings.migrations_dir
        )
        self.database = self.clickhouse.database or "default"
        self.cluster = self.settings.clickhouse_cluster
        self._log = log or _logger.info
        self.lock = MigrationLock(self.clickhouse, self.settings, run_id, self._log)

    # Public commands

    def load_files(self) -> list[MigrationFile]:
        """The validated migration files.

        Raises:
            MigrationFileError: On any malformed, duplicate, missing or empty file.
        """
        return discover_migrations(self.folder)

    def get_migration_status(self) -> MigrationStatus:
        """The schema's state: counts, failed rows, edited and missing files, one row per version,
        and the lock's claimants (whether a ``running`` row was interrupted depends on them)."""
        files = self.load_files()
        with self._client() as client:
            state = self._state(client)
            rows = state.migrations()
            holders = self.lock.holders(state) if state.exists() else []
        status = self._status(files, rows)
        # Without the lock, a "running" row is a migration in progress only while a live
        # runner claims the lock; otherwise its runner died.
        busy = any(h.alive is not False for h in holders)
        failed = tuple(
            dataclasses.replace(f, interrupted=f.status == MigrationState.RUNNING and not busy)
            for f in status.failed
        )
        return dataclasses.replace(status, failed=failed, lock_holders=tuple(holders))

    def apply(self, *, dry_run: bool = False) -> CommandResult:
        """Apply the pending migrations in version order.

        Args:
            dry_run: Only list (and log) the statements that would run; change nothing.

        Returns:
            The labels applied and the status after; for a dry run, the planned statements.

        Raises:
            MigrationStateError: A failed migration, an edited applied file, or a missing file.
            MigrationFailedError: A statement failed; the migration is recorded as failed.
            MigrationLockError: Another runner held the lock too long.
        """
        files = self.load_files()
        with self._client() as client:
            state = self._state(client)
            if dry_run:
                status = self._status(files, state.migrations())
                self._refuse_unsafe(status, command="up")
                plan = self._plan(files, status)
                for item in plan:
                    self._log(f"[dry run] {item.migration} #{item.number}: {item.sql}")
                return CommandResult("up", (), status, dry_run=True, statements=tuple(plan))
            applied: list[str] = []
            with self.lock.held(state) as owner:
                status = self._status(files, state.migrations())
                self._refuse_unsafe(status, command="up")
                pending = status.pending_versions
                for migration in files:
                    if migration.version in pending:
                        self.lock.heartbeat(state, owner)
                        self._run_up(client, state, migration)
                        applied.append(migration.label)
                status = self._status(files, state.migrations())
        if not applied:
            self._log("no pending migration")
        return CommandResult("up", tuple(applied), status)

    def rollback_migrations(self, count: int) -> CommandResult:
        """Roll the last ``count`` applied migrations back with their down files, newest first.

        Nothing is touched unless every one of them has a down file.

        Returns:
            The labels rolled back and the status after.

        Raises:
            MigrationStateError: ``count`` too large, a missing down file, a dirty or edited
                migration.
            MigrationFailedError: A down statement failed; the migration is recorded as failed.
        """
        if count < 1:
            raise MigrationStateError(
                f"cannot roll back {count} migrations",
                source=str(self.folder),
                fix="give a count of 1 or more",
            )
        files = self.load_files()
        by_version = {m.version: m for m in files}
        rolled_back: list[str] = []
        with self._client() as client:
            state = self._state(client)
            with self.lock.held(state) as owner:
                status = self._status(files, state.migrations())
                self._refuse_unsafe(status, command="down")
                applied = sorted((r.version for r in status.migrations if r.applied), reverse=True)
                if count > len(applied):
                    raise MigrationStateError(
                        f"cannot roll back {count} migrations: only {len(applied)} applied",
                        source=self._target(),
                        fix=f"give a count of at most {len(applied)}",
                    )
                chosen = [by_version[v] for v in applied[:count]]
                no_down = [m.label for m in chosen if m.down_path is None]
                if no_down:
                    raise MigrationStateError(
                        f"cannot roll back: no down file for {', '.join(no_down)}; nothing was "
                        "rolled back",
                        source=str(self.folder),
                        fix="write the missing NNNN_name.down.sql file(s), or roll back fewer",
                    )
                for migration in chosen:
                    self.lock.heartbeat(state, owner)
                    self._run_down(client, state, migration)
                    rolled_back.append(migration.label)
                status = self._status(files, state.migrations())
        return CommandResult("down", tuple(rolled_back), status)

    def repair(self, *, mark_applied: bool = False) -> CommandResult:
        """Clear failed (dirty) migrations after a human fixed the schema.

        Args:
            mark_applied: Record them as applied (the human finished them by hand). By default
                they become pending again (the human undid their partial effect), so the next
                ``up`` runs them.

        Returns:
            The labels repaired, the lock's claimants seen before, and the status after.
        """
        files = self.load_files()
        with self._client() as client:
            state = self._state(client)
            repaired: list[str] = []
            if not state.exists():
                return CommandResult("repair", (), self._status(files, {}))
            holders = self.lock.holders(state)
            for holder in holders:
                self._log(f"the migration lock was claimed by {holder.owner}: {holder.state}")
            with self.lock.held(state):
                rows = state.migrations()
                by_version = {m.version: m for m in files}
                for row in rows.values():
                    if row.status not in DIRTY_STATES:
                        continue
                    migration = by_version.get(row.version)
                    state.record(
                        version=row.version,
                        name=row.name,
                        checksum=migration.checksum if migration else row.checksum,
                        status=MigrationState.APPLIED if mark_applied else MigrationState.REVERTED,
                        operation="repair",
                        applied=mark_applied,
                    )
                    repaired.append(migration.label if migration else label(row.version, row.name))
                    self._log(
                        f"repaired {repaired[-1]}: now {'applied' if mark_applied else 'pending'}"
                    )
                status = self._status(files, state.migrations())
        return CommandResult("repair", tuple(repaired), status, lock_holders=tuple(holders))

    def baseline(self, version: int) -> CommandResult:
        """Mark the files up to ``version`` as applied, without running them.

        For a database whose schema already matches those files. Refused once any migration
        was recorded.

        Returns:
            The labels marked applied and the status after.
        """
        files = self.load_files()
        versions = {m.version for m in files}
        if version not in versions:
            raise MigrationStateError(
                f"no migration file with version {version:04d}",
                source=str(self.folder),
                fix=f"give one of the versions in the folder (1 to {max(versions, default=0)})",
            )
        with self._client() as client:
            state = self._state(client)
            with self.lock.held(state):
                if state.has_history():
                    raise MigrationStateError(
                        "cannot baseline: migrations are already recorded",
                        source=self._target(),
                        fix="baseline only a database that never ran migrations; use status/up",
                    )
                marked: list[str] = []
                for migration in files:
                    if migration.version > version:
                        break
                    state.record(
                        version=migration.version,
                        name=migration.name,
                        checksum=migration.checksum,
                        status=MigrationState.BASELINE,
                        operation="baseline",
                        applied=True,
                    )
                    marked.append(migration.label)
                status = self._status(files, state.migrations())
        self._log(f"baselined {len(marked)} migration(s) up to {version:04d}")
        return CommandResult("baseline", tuple(marked), status)

    def expected_schema(self) -> dict[str, dict[str, str] | None]:
        """The tables the applied migrations create: ``{"db.table": {column: type} | None}``.

        ``None`` stands for a table created without a column list (``AS other``).
        """
        files = self.load_files()
        with self._client() as client:
            rows = self._state(client).migrations()
        return self._expected(files, rows)

    def check_schema(self) -> SchemaCheck:
        """Compare the tables the applied migrations create with the database."""
        files = self.load_files()
        with self._client() as client:
            expected = self._expected(files, self._state(client).migrations())
            problems = schema_differences(client, expected)
        tables = {name: list(cols) if cols is not None else None for name, cols in expected.items()}
        return SchemaCheck(tables=tables, problems=tuple(problems))

    def _expected(
        self, files: list[MigrationFile], rows: dict[int, MigrationRow]
    ) -> dict[str, dict[str, str] | None]:
        applied = {v for v, row in rows.items() if row.status in APPLIED_STATES}
        statements = [
            render(s.sql, database=self.database, cluster="")
            for m in files
            if m.version in applied
            for s in m.up
        ]
        return expected_tables(statements, self.database)

    # Steps

    def _run_up(self, client: Client, state: StateTable, migration: MigrationFile) -> None:
        self._run(client, state, migration, direction="up")

    def _run_down(self, client: Client, state: StateTable, migration: MigrationFile) -> None:
        self._run(client, state, migration, direction="down")

    def _run(
        self, client: Client, state: StateTable, migration: MigrationFile, *, direction: str
    ) -> None:
        statements = migration.up if direction == "up" else migration.down
        path = migration.up_path if direction == "up" else migration.down_path
        record: dict[str, Any] = {  # the fields of every state row of this run
            "version": migration.version,
            "name": migration.name,
            "checksum": migration.checksum,
            "operation": direction,
            "statements": len(statements),
        }
        state.record(status=MigrationState.RUNNING, **record)
        started = time.monotonic()
        for number, statement in enumerate(statements, start=1):
            sql = render(statement.sql, database=self.database, cluster=self.cluster)
            try:
                client.command(sql)
            except Exception as exc:
                error = _first_line(exc, secret=self.clickhouse.password)
                state.record(
                    status=MigrationState.FAILED,
                    failed_statement=number,
                    error=error,
                    duration_ms=int((time.monotonic() - started) * 1000),
                    **record,
                )
                assert path is not None
                raise MigrationFailedError(
                    f"migration {migration.label} ({direction}) failed at statement {number} of "
                    f"{len(statements)} (line {statement.line} of {path.name}): {error}; it is "
                    "now recorded as failed and every command refuses to run until it is repaired",
                    source=str(path),
                    fix="undo the statements before it by hand and fix the file, then run "
                    "`python -m dataproc_dagster.cli.migrations repair` (or `repair --applied` if "
                    "you completed the migration by hand)",
                ) from None
        duration_ms = int((time.monotonic() - started) * 1000)
        state.record(
            status=MigrationState.APPLIED if direction == "up" else MigrationState.REVERTED,
            applied=direction == "up",
            duration_ms=duration_ms,
            **record,
        )
        verb = "applied" if direction == "up" else "rolled back"
        self._log(f"{verb} {migration.label}: {len(statements)} statement(s) in {duration_ms} ms")

    # State

    def _state(self, client: Client) -> StateTable:
        return StateTable(
            client,
            database=self.database,
            table=self.settings.migrations_table,
            cluster=self.cluster,
        )

    def _target(self) -> str:
        return f"{self.database}.{self.settings.migrations_table} on {self.clickhouse.describe()}"

    @contextmanager
    def _client(self) -> Iterator[Client]:
        with self.clickhouse.get_client(step="migrations") as client:
            yield client

    def _status(self, files: list[MigrationFile], rows: dict[int, MigrationRow]) -> MigrationStatus:
        return summarize(files, rows, database=self.database, folder=self.folder)

    def _refuse_unsafe(self, status: MigrationStatus, *, command: str) -> None:
        if status.failed:
            # Called under the lock: a "running" row is one whose runner died.
            first = status.failed[0]
            first = dataclasses.replace(first, interrupted=first.status == MigrationState.RUNNING)
            raise MigrationStateError(
                f"`{command}` refused: {first.describe()}",
                source=self._target(),
                fix="make the schema consistent by hand, then run `python -m "
                "dataproc_dagster.cli.migrations repair` (add --applied if you completed it)",
            )
        if status.checksum_mismatches:
            names = ", ".join(status.checksum_mismatches)
            raise MigrationStateError(
                f"`{command}` refused: applied migration file(s) were edited after they ran "
                f"(checksum mismatch): {names}",
                source=str(self.folder),
                fix="restore the applied file(s) as they were and put the change in a new "
                "migration file",
            )
        if status.missing_files:
            names = ", ".join(status.missing_files)
            raise MigrationStateError(
                f"`{command}` refused: applied version(s) have no file in the folder: {names}",
                source=str(self.folder),
                fix="restore the missing file(s), or point MIGRATIONS_DIR at the right folder",
            )

    def _plan(self, files: list[MigrationFile], status: MigrationStatus) -> list[PlannedStatement]:
        pending = status.pending_versions
        plan: list[PlannedStatement] = []
        for migration in files:
            if migration.version not in pending:
                continue
            for number, statement in enumerate(migration.up, start=1):
                sql = render(statement.sql, database=self.database, cluster=self.cluster)
                plan.append(PlannedStatement(migration.label, number, sql))
        return plan


def _first_line(exc: BaseException, *, secret: str = "") -> str:
    text = str(exc).strip() or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return text.splitlines()[0][:1000]


__all__ = ["ClickHouseMigrationManager", "MigrationFileError", "MigrationStatus"]
