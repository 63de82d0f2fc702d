"""``HttpSourceSpec``: every option of one HTTP endpoint, checked when it is built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dataproc_dagster.core.choices import parse_choice
from dataproc_dagster.core.config_checks import check_http_url, check_timeout
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.pipeline.window import template_fields
from dataproc_dagster.sources.http.auth import NO_AUTH, HttpAuth
from dataproc_dagster.sources.http.client import HttpSource
from dataproc_dagster.sources.http.incremental import Incremental
from dataproc_dagster.sources.http.pagination import Paginator, single
from dataproc_dagster.sources.http.records import ListMode
from dataproc_dagster.sources.http.retry import HttpRetryPolicy


@dataclass(frozen=True)
class HttpSourceSpec:
    """Every option of one HTTP endpoint; see :func:`create_http_extractor`."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    auth: HttpAuth = NO_AUTH
    paginator: Paginator = field(default_factory=single)
    records_path: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    incremental: Incremental | None = None
    concurrency: int = 4
    max_depth: int = 3
    list_mode: ListMode = ListMode.AUTO
    retry: HttpRetryPolicy | None = None
    resource_key: str | None = None
    # Query parameters filled from the partition window: name -> "{start:%Y-%m-%d}".
    window_params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.url:
            raise ConfigError(
                "the HTTP extractor needs a url",
                source="HTTP extractor",
                fix="pass url='https://api.example.com/items'",
            )
        if self.concurrency < 1:
            raise ConfigError(
                f"concurrency must be at least 1, got {self.concurrency}",
                source="HTTP extractor",
                fix="set concurrency=1 for sequential paging, or a small number such as 4",
            )
        # The strings of run config and user code become the enum here.
        list_mode = parse_choice(
            ListMode, self.list_mode, what="list_mode", source="HTTP extractor"
        )
        object.__setattr__(self, "list_mode", list_mode)
        if self.max_depth < 0:
            raise ConfigError(
                "max_depth must not be negative",
                source="HTTP extractor",
                fix="set max_depth=0 to keep nested objects as JSON text",
            )
        for name, template in self.window_params.items():
            template_fields(str(template), option=f"HTTP extractor window_params[{name!r}]")
        if self.timeout is not None:
            check_timeout(self.timeout, option="HTTP extractor timeout")
        if "://" in self.url:
            check_http_url(
                self.url,
                option="HTTP extractor url",
                example="https://api.example.com/items",
                credentials_fix="remove user:password@ and use auth (kind: basic, username, "
                "secret_env)",
            )
        if self.resource_key is None and "://" not in self.url:
            raise ConfigError(
                f"url {self.url!r} is relative but no http resource is named",
                source="HTTP extractor",
                fix="pass a full URL, or resource_key='http' with a base_url on that resource",
            )

    def describe(self, source: HttpSource | None = None) -> str:
        """The URL (secrets masked) and the paging style."""
        url = source.mask(self.url) if source else HttpSource(auth=self.auth).mask(self.url)
        return f"GET {url} ({self.paginator.describe()})"
