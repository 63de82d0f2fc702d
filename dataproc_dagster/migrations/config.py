"""Settings of the migration runner, read from the environment or ``.env``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repository's top-level ``migrations/`` next to the package (an editable install or a
# checkout); an installed package falls back to ``migrations/`` under the working directory.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class MigrationSettings(BaseSettings):
    """``MIGRATIONS_DIR``, ``MIGRATIONS_TABLE``, ``CLICKHOUSE_CLUSTER`` and the lock timings."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    migrations_dir: Path | None = Field(
        default=None, description="Folder of NNNN_name.up.sql files (default: migrations/)."
    )
    migrations_table: str = Field(default="schema_migrations", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_cluster: str = Field(
        default="", description="Cluster name for {cluster} (ON CLUSTER); empty on one server."
    )
    migrations_lock_timeout: float = Field(
        default=60.0, ge=0, description="Seconds a runner waits for another runner's lock."
    )
    migrations_lock_ttl: float = Field(
        default=10.0,
        gt=0,
        le=86_400,
        description="Lease of a lock claim, seconds: a runner that stops renewing it (killed, "
        "host lost) loses the lock this long after its last renewal.",
    )
    migrations_lock_heartbeat: float = Field(
        default=3.0,
        gt=0,
        description="Seconds between two renewals of a held claim (below MIGRATIONS_LOCK_TTL).",
    )

    @model_validator(mode="after")
    def _heartbeat_below_ttl(self) -> MigrationSettings:
        if self.migrations_lock_heartbeat >= self.migrations_lock_ttl:
            raise ValueError(
                f"MIGRATIONS_LOCK_HEARTBEAT ({self.migrations_lock_heartbeat:g} s) must be below "
                f"MIGRATIONS_LOCK_TTL ({self.migrations_lock_ttl:g} s), e.g. 3 and 10"
            )
        return self


def default_migrations_dir(configured: Path | None = None) -> Path:
    """The migrations folder: ``configured`` (relative to the working directory), else the
    project's top-level ``migrations/``."""
    if configured is not None:
        return configured.expanduser().resolve()
    packaged = _PACKAGE_ROOT / "migrations"
    if packaged.is_dir():
        return packaged
    return (Path.cwd() / "migrations").resolve()
