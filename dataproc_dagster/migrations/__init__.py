"""ClickHouse migrations: SQL files in ``migrations/``, a runner with status, apply, rollback,
repair and baseline, and a CLI (``python -m dataproc_dagster.cli.migrations``)."""

from dataproc_dagster.migrations.errors import (
    MigrationFailedError,
    MigrationFileError,
    MigrationLockError,
    MigrationStateError,
)
from dataproc_dagster.migrations.files import MigrationFile, discover_migrations
from dataproc_dagster.migrations.runner import ClickHouseMigrationManager

__all__ = [
    "ClickHouseMigrationManager",
    "MigrationFailedError",
    "MigrationFile",
    "MigrationFileError",
    "MigrationLockError",
    "MigrationStateError",
    "discover_migrations",
]
