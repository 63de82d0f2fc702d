"""Framework settings: one pydantic-settings object read from the environment and ``.env``.

Every variable is listed, with a comment, in ``.env.example``. A bad value fails when the
settings load, with the variable's name and the accepted form.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dataproc_dagster.core.config_checks import MAX_TIMEOUT_SECONDS, split_credentials
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.redaction import mask_url

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CLICKHOUSE_SCHEMES = ("chdb", "http", "https")


class FrameworkSettings(BaseSettings):
    """Settings of the framework, from environment variables (upper-case names) or ``.env``."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    dataproc_data_dir: Path = Field(
        default=Path(".dataproc"),
        description="Folder for the embedded ClickHouse and the chunks passed between ops.",
    )
    clickhouse_url: str = Field(
        default="",
        description="chdb:///path (embedded, default: <DATAPROC_DATA_DIR>/clickhouse) or "
        "http(s)://host:8123 (a server).",
    )
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "default"
    clickhouse_lock_timeout: float = Field(
        default=600.0,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description="Seconds a step waits for the embedded engine.",
    )
    clickhouse_pool_limit: int = Field(
        default=0,
        ge=0,
        description="Steps using ClickHouse at once (Dagster pool clickhouse); 0 = 1 on the "
        "embedded engine, 4 on a server.",
    )
    chunk_rows: int = Field(default=100_000, gt=0, description="Rows per chunk between ops.")
    load_insert_rows: int = Field(
        default=500_000,
        gt=0,
        description="Rows of chunk files the embedded engine reads per INSERT when loading: "
        "larger is faster and takes more memory (docs/performance.md).",
    )
    chunk_retention_days: float = Field(
        default=7.0,
        ge=0,
        description="Days the chunk folder of a failed run is kept for re-execution, unless a "
        "re-execution succeeded first (core/chunk_retention.py).",
    )
    chunk_store: str = Field(
        default="",
        description="Where the chunk files between steps live: empty = <DATAPROC_DATA_DIR>/runs "
        "on this machine, or s3://bucket/prefix (S3-compatible storage every worker reaches).",
    )
    chunk_store_endpoint_url: str = Field(
        default="", description="S3 API endpoint (MinIO, GCS, a test server); empty = AWS."
    )
    chunk_store_region: str = ""
    chunk_store_access_key_id: str = ""
    chunk_store_secret_access_key: SecretStr = SecretStr("")
    metabase_base_url: str = ""
    metabase_api_key: SecretStr = SecretStr("")
    metabase_username: str = ""
    metabase_password: SecretStr = SecretStr("")
    metabase_timeout: float = Field(default=30.0, gt=0, le=MAX_TIMEOUT_SECONDS)
    log_level: str = "INFO"
    default_timezone: str = "UTC"

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        upper = value.strip().upper()
        if upper not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return upper

    @field_validator("dataproc_data_dir")
    @classmethod
    def _check_data_dir(cls, value: Path) -> Path:
        path = value.expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ValueError("is a file, not a folder; name a folder (it is created if missing)")
        return path

    @field_validator("clickhouse_url")
    @classmethod
    def _check_clickhouse_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError(
                "is not a valid URL (is the port a number?), e.g. http://localhost:8123"
            ) from None
        if parts.scheme not in CLICKHOUSE_SCHEMES:
            raise ValueError(
                "must start with chdb:/// (embedded, e.g. chdb:///var/lib/dataproc/ch), "
                "http:// or https:// (a server, e.g. http://localhost:8123)"
            )
        if parts.scheme == "chdb" and (parts.username is not None or parts.password is not None):
            raise ValueError("an embedded chdb:// URL takes no user name or password")
        if parts.scheme != "chdb" and not parts.hostname:
            raise ValueError("has no host name, e.g. http://localhost:8123")
        return value

    @field_validator("chunk_store")
    @classmethod
    def _check_chunk_store(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and (not value.startswith("s3://") or not urlsplit(value).hostname):
            raise ValueError(
                "must be empty (the local data folder) or s3://bucket[/prefix], "
                "e.g. s3://dataproc-chunks/prod"
            )
        return value

    @field_validator("metabase_base_url")
    @classmethod
    def _check_metabase_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError("is not a valid URL (is the port a number?)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s):// URL such as https://metabase.example.com")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "must not hold user:password@; set METABASE_USERNAME and METABASE_PASSWORD "
                "(or METABASE_API_KEY) instead"
            )
        return value

    @field_validator("default_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone such as UTC or Europe/Berlin") from exc
        return value

    @model_validator(mode="after")
    def _resolve_paths(self) -> FrameworkSettings:
        url = self.clickhouse_url
        if not url or (url.startswith("chdb:") and not url[len("chdb:") :].strip("/")):
            # No URL, or chdb:// without a directory: never the working directory or "/".
            self.clickhouse_url = f"chdb://{self.dataproc_data_dir / 'clickhouse'}"
            return self
        # user:password@ in a server URL logs in; the URL kept (and shown anywhere) has none.
        bare, user, password = split_credentials(url)
        if bare != url:
            self.clickhouse_url = bare
            if user:
                self.clickhouse_user = user
            if password is not None:
                self.clickhouse_password = SecretStr(password)
        return self

    @property
    def runs_dir(self) -> Path:
        """Folder holding the chunks of each run."""
        return self.dataproc_data_dir / "runs"

    @property
    def log_level_number(self) -> int:
        """``LOG_LEVEL`` as a :mod:`logging` number."""
        return int(logging.getLevelName(self.log_level))


def load_settings(**overrides: object) -> FrameworkSettings:
    """Read the settings, turning validation errors into one message per bad variable.

    Raises:
        ConfigError: Naming each invalid variable and the accepted form.
    """
    check_env_file()
    try:
        return FrameworkSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            value = error.get("input")
            shown = (
                "***"
                if _is_secret(name)
                else repr(mask_url(value))
                if isinstance(value, str)
                else repr(value)
            )
            problems.append(f"{name}: {error['msg']} (got {shown})")
        raise ConfigError(
            "invalid settings: " + "; ".join(problems),
            source="environment / .env",
            fix="correct the variables named above; .env.example lists every variable",
        ) from None


def check_env_file(path: Path | str = ".env") -> None:
    """Refuse a ``.env`` that is not UTF-8, naming the file, the line and the byte.

    Raises:
        ConfigError: When the file cannot be decoded.
    """
    env = Path(path)
    try:
        data = env.read_bytes()
    except OSError:
        return  # missing or unreadable: pydantic-settings skips it as well
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{env} is not valid UTF-8: byte {exc.start} (line {line}) is 0x{data[exc.start]:02x}",
            source=str(env),
            fix=f"save {env} as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or remove the line",
        ) from None


def _is_secret(name: str) -> bool:
    return any(word in name for word in ("PASSWORD", "KEY", "TOKEN", "SECRET"))


@lru_cache(maxsize=1)
def get_settings() -> FrameworkSettings:
    """The process-wide settings, read once."""
    return load_settings()
