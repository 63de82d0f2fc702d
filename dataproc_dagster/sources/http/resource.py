"""``HttpResource``: base URL, default headers, timeout, retry policy and auth for an HTTP API."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urljoin

from dagster import ConfigurableResource
from pydantic import Field

from dataproc_dagster.core.choices import parse_choice
from dataproc_dagster.core.config_checks import check_http_url, check_timeout
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.redaction import is_secret_name
from dataproc_dagster.pipeline.config_types import default_of
from dataproc_dagster.sources.http.auth import ApiKeyLocation, AuthKind, HttpAuth
from dataproc_dagster.sources.http.client import HttpSource
from dataproc_dagster.sources.http.config import ApiKeyLocationName, AuthKindName
from dataproc_dagster.sources.http.retry import HttpRetryPolicy


class HttpResource(ConfigurableResource):
    """An HTTP JSON API on httpx. Pass the secret as ``EnvVar("NAME")`` so that only the
    variable's name is stored in definitions, run config and the UI.

    Example:
        ``HttpResource(base_url="https://api.example.com/v2/", auth_kind="bearer",
        secret=EnvVar("EXAMPLE_API_TOKEN"))``
    """

    base_url: str = Field(default="", description="Prefix for relative extractor URLs")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers sent with every request"
    )
    timeout: float = Field(
        default=default_of(HttpSource, "timeout"), description="Connect/read timeout, seconds"
    )
    auth_kind: AuthKindName = Field(
        default=default_of(HttpAuth, "kind").value, description="none, bearer, basic or api_key"
    )
    username: str = Field(default="", description="User name for basic auth")
    api_key_name: str = Field(default="", description="Header or query parameter of the API key")
    api_key_location: ApiKeyLocationName = Field(
        default=default_of(HttpAuth, "location").value, description="header or query (api_key)"
    )
    secret: str = Field(
        default="", description="Token, password or API key; pass EnvVar('NAME'), never a literal"
    )
    max_attempts: int = Field(
        default=default_of(HttpRetryPolicy, "max_attempts"),
        description="Attempts per request, the first included",
    )
    backoff: float = Field(
        default=default_of(HttpRetryPolicy, "backoff"),
        description="Base backoff, seconds (doubles per attempt)",
    )
    max_backoff: float = Field(
        default=default_of(HttpRetryPolicy, "max_backoff"),
        description="Cap on one computed wait, seconds",
    )
    max_total_wait: float = Field(
        default=default_of(HttpRetryPolicy, "max_total_wait"),
        description="Cap on all waits of one request",
    )
    retry_statuses: list[int] | None = Field(
        default=None,
        description="HTTP statuses retried; default 408, 425, 429 and every 5xx (other 4xx "
        "are refused)",
    )

    def auth(self) -> HttpAuth:
        """The auth settings (without the secret)."""
        return HttpAuth(
            kind=parse_choice(AuthKind, self.auth_kind, what="auth_kind", source="http resource"),
            username=self.username or None,
            name=self.api_key_name or None,
            location=parse_choice(
                ApiKeyLocation,
                self.api_key_location,
                what="api_key_location",
                source="http resource",
            ),
        )

    def retry_policy(self) -> HttpRetryPolicy:
        """The retry policy."""
        return HttpRetryPolicy.from_options(
            self.retry_statuses,
            source="http resource retry_statuses",
            max_attempts=self.max_attempts,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            max_total_wait=self.max_total_wait,
        )

    def resolve_url(self, url: str) -> str:
        """``url`` itself when absolute, else joined to :attr:`base_url`."""
        if "://" in url or not self.base_url:
            return url
        base = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        return urljoin(base, url.lstrip("/"))

    def source(
        self, *, pipeline: str | None = None, log: Callable[[str], None] | None = None
    ) -> HttpSource:
        """An :class:`HttpSource` with this resource's settings."""
        auth = self.auth()
        if self.base_url:
            check_http_url(
                self.base_url,
                option="http resource base_url",
                example="https://api.example.com/v2/",
                credentials_fix="remove user:password@ and use auth_kind='basic' with "
                "secret=EnvVar('NAME')",
            )
        check_timeout(self.timeout, option="http resource timeout")
        if auth.kind != AuthKind.NONE and not self.secret:
            raise ConfigError(
                f"the http resource uses {auth.kind} auth but its secret is empty",
                pipeline=pipeline,
                source="http resource",
                fix="set secret=EnvVar('NAME') and export NAME in the code location's "
                "environment or .env; after adding it to .env, reload the code location (UI: "
                "Deployment, Reload)",
            )
        header_secrets = tuple(v for k, v in self.headers.items() if is_secret_name(k))
        return HttpSource(
            pipeline=pipeline,
            headers=dict(self.headers),
            auth=auth,
            secret=self.secret,
            timeout=self.timeout,
            retry=self.retry_policy(),
            log=log,
            extra_secrets=header_secrets,
        )
