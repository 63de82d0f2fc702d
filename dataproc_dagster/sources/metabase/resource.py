"""``MetabaseResource``: a Metabase connection (API key or session login) for Dagster ops."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource
from pydantic import Field

from dataproc_dagster.core.redaction import mask_url
from dataproc_dagster.core.settings import FrameworkSettings, get_settings
from dataproc_dagster.sources.metabase.client import MetabaseClient
from dataproc_dagster.sources.metabase.retry import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_RETRY_BACKOFF,
    metabase_retry_policy,
)


class MetabaseResource(ConfigurableResource):
    """Metabase's REST API over httpx.

    Credentials: an API key (``X-API-KEY``), or username + password (a session from
    ``POST /api/session``, renewed once on a 401). Fields left empty are read at run time from
    ``METABASE_BASE_URL``, ``METABASE_API_KEY``, ``METABASE_USERNAME``, ``METABASE_PASSWORD`` and
    ``METABASE_TIMEOUT`` (environment or ``.env``), so that no secret is stored in the resource's
    config shown in the UI. To set a secret explicitly, pass ``EnvVar("NAME")``, not the value.
    """

    base_url: str = Field(default="", description="Metabase URL; empty = METABASE_BASE_URL")
    api_key: str = Field(
        default="", description="API key; pass an EnvVar; empty = METABASE_API_KEY"
    )
    username: str = Field(default="", description="Login user; empty = METABASE_USERNAME")
    password: str = Field(
        default="", description="Login password; pass an EnvVar; empty = METABASE_PASSWORD"
    )
    timeout: float = Field(
        default=0.0, description="Seconds per network read; 0 = METABASE_TIMEOUT"
    )
    max_retries: int = Field(
        default=DEFAULT_MAX_RETRIES,
        description="Retries after the first attempt (the HTTP retry policy's max_attempts - 1) "
        "on 408, 425, 429, 5xx (not failed queries), resets and cut-off bodies; set per run "
        "with resources: metabase: config: max_retries",
    )
    retry_backoff: float = Field(
        default=DEFAULT_RETRY_BACKOFF,
        description="First retry wait, seconds (doubles per attempt, with jitter)",
    )
    max_retry_wait: float = Field(
        default=DEFAULT_MAX_RETRY_WAIT,
        description="Longest single wait, seconds, whatever Retry-After says",
    )

    @classmethod
    def from_settings(cls, settings: FrameworkSettings) -> MetabaseResource:
        """The resource for ``build_resources``: URL and timeout now, secrets at run time."""
        return cls(base_url=settings.metabase_base_url, timeout=settings.metabase_timeout)

    def _settings(self) -> FrameworkSettings:
        return get_settings()

    def resolved_base_url(self) -> str:
        """The base URL in use (field, else ``METABASE_BASE_URL``)."""
        return (self.base_url or self._settings().metabase_base_url).strip().rstrip("/")

    def describe(self) -> str:
        """Where Metabase is, without credentials."""
        url = self.resolved_base_url()
        return f"Metabase {mask_url(url)}" if url else "Metabase (METABASE_BASE_URL not set)"

    @contextmanager
    def get_client(self, *, log: Callable[[str], None] | None = None) -> Iterator[MetabaseClient]:
        """Open a :class:`MetabaseClient` for the block; a login session is closed after it.

        Args:
            log: Receives one line per retry or re-login (e.g. ``context.log.warning``).

        Raises:
            ConfigError: When the URL or the credentials are missing.
        """
        settings = self._settings()
        api_key = self.api_key or settings.metabase_api_key.get_secret_value()
        username = self.username or settings.metabase_username
        password = self.password or settings.metabase_password.get_secret_value()
        if self.username or self.password:
            # Credentials given on the resource win over a key from the environment.
            api_key = self.api_key
        client = MetabaseClient(
            self.resolved_base_url(),
            api_key=api_key,
            username=username,
            password=password,
            timeout=self.timeout or settings.metabase_timeout,
            retry=metabase_retry_policy(self.max_retries, self.retry_backoff, self.max_retry_wait),
            log=log,
        )
        with client:
            yield client
