"""Errors of the migration runner; each names the file or table involved and the fix."""

from __future__ import annotations

from dataproc_dagster.core.errors import ConfigError, DataprocError


class MigrationFileError(ConfigError):
    """The migrations folder holds a malformed, duplicate, missing or empty file."""


class MigrationStateError(DataprocError):
    """The recorded state forbids the command: a failed (dirty) migration, an edited file, ..."""


class MigrationFailedError(DataprocError):
    """A statement of a migration failed; the migration is now recorded as failed."""


class MigrationLockError(DataprocError):
    """Another runner holds the migration lock."""
