"""Reading the migrations' status: the files against the state table's rows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from dataproc_dagster.migrations.files import MigrationFile
from dataproc_dagster.migrations.state import MigrationRow
from dataproc_dagster.migrations.status import (
    APPLIED_STATES,
    DIRTY_STATES,
    DirtyMigration,
    MigrationFileStatus,
    MigrationState,
    MigrationStatus,
    label,
)


def summarize(
    files: list[MigrationFile], rows: dict[int, MigrationRow], *, database: str, folder: Path
) -> MigrationStatus:
    """The status of the migration ``files`` against the state table's ``rows``."""
    by_version = {m.version: m for m in files}
    per_file: list[MigrationFileStatus] = []
    for migration in files:
        row = rows.get(migration.version)
        recorded = row.status if row else MigrationState.PENDING
        shown = MigrationState.PENDING if recorded == MigrationState.REVERTED else recorded
        applied = recorded in APPLIED_STATES
        per_file.append(
            MigrationFileStatus(
                version=migration.version,
                name=migration.name,
                file=migration.up_path.name,
                has_down=migration.down_path is not None,
                status=shown,
                applied=applied,
                checksum=migration.checksum,
                checksum_ok=not applied or row is None or row.checksum == migration.checksum,
                applied_at=_iso(row.applied_at) if row and applied else None,
                duration_ms=row.duration_ms if row and applied else None,
                statements=len(migration.up),
            )
        )
    failed = tuple(
        DirtyMigration(
            version=row.version,
            name=row.name,
            status=row.status,
            operation=row.operation,
            failed_statement=row.failed_statement,
            statements=row.statements,
            error=row.error,
        )
        for row in rows.values()
        if row.status in DIRTY_STATES
    )
    missing = tuple(
        label(row.version, row.name)
        for row in rows.values()
        if row.version not in by_version and row.status != MigrationState.REVERTED
    )
    applied_versions = [v for v, r in rows.items() if r.status in APPLIED_STATES]
    return MigrationStatus(
        database=database,
        folder=str(folder),
        executed_count=len(applied_versions),
        pending_count=sum(1 for r in per_file if r.status == MigrationState.PENDING),
        failed_count=len(failed),
        failed=failed,
        checksum_mismatches=tuple(r.file for r in per_file if not r.checksum_ok),
        missing_files=missing,
        current_version=max(applied_versions, default=None),
        latest_version=max(by_version, default=None),
        migrations=tuple(per_file),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
