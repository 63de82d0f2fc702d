"""Run config of a generic HTTP extract step: ``dagster.Config`` models that build the spec.

Only the *name* of the environment variable holding a secret is part of the config, so the
launchpad, the run's config in the UI and the event log never hold the secret itself.

Defaults are read from the spec and policy classes (``HttpRetryPolicy``, ``HttpAuth``, the
paginator classes, ...), so each one is declared once. Choices are ``Literal`` fields whose
values mirror the library's ``StrEnum`` (a unit test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

from pydantic import Field

from dataproc_dagster.pipeline.config_types import StepConfig, default_of
from dataproc_dagster.sources.http.auth import ApiKeyLocation, AuthKind, HttpAuth
from dataproc_dagster.sources.http.client import HttpSource
from dataproc_dagster.sources.http.incremental import Incremental
from dataproc_dagster.sources.http.pagination import (
    PAGINATION_STYLES,
    CursorPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
    SinglePaginator,
    paginator_from_config,
)
from dataproc_dagster.sources.http.records import ListMode
from dataproc_dagster.sources.http.retry import HttpRetryPolicy
from dataproc_dagster.sources.http.spec import HttpSourceSpec

AuthKindName = Literal["none", "bearer", "basic", "api_key"]
ApiKeyLocationName = Literal["header", "query"]
PaginationStyleName = Literal[
    "single", "page_number", "offset", "cursor", "next_url", "link_header"
]
ListModeName = Literal["auto", "json"]


class HttpAuthConfig(StepConfig):
    """The ``auth`` block: how requests authenticate (the secret comes from ``secret_env``)."""

    kind: AuthKindName = Field(
        default=default_of(HttpAuth, "kind").value, description=f"One of {', '.join(AuthKind)}"
    )
    secret_env: str | None = Field(
        default=default_of(HttpAuth, "secret_env"),
        description="Name of the environment variable holding the token / password / key",
    )
    username: str | None = Field(
        default=default_of(HttpAuth, "username"), description="basic: user name"
    )
    name: str | None = Field(
        default=default_of(HttpAuth, "name"),
        description="api_key: header or query parameter name, e.g. X-API-Key",
    )
    location: ApiKeyLocationName = Field(
        default=default_of(HttpAuth, "location").value,
        description=f"api_key: {' or '.join(ApiKeyLocation)}",
    )

    def to_auth(self) -> HttpAuth:
        """The :class:`HttpAuth` of this block (checked there)."""
        return HttpAuth(
            kind=AuthKind(self.kind),
            secret_env=self.secret_env,
            username=self.username,
            name=self.name,
            location=ApiKeyLocation(self.location),
        )


class HttpPaginatorConfig(StepConfig):
    """The ``paginator`` block: ``style`` picks the paginator class; the other options are
    those of every style (a style ignores the options of the others)."""

    style: PaginationStyleName = Field(
        default=cast(PaginationStyleName, SinglePaginator.style),
        description=", ".join(PAGINATION_STYLES),
    )
    page_param: str = Field(
        default=default_of(PageNumberPaginator, "page_param"),
        description="page_number: page parameter",
    )
    first_page: int = Field(
        default=default_of(PageNumberPaginator, "first_page"), description="page_number: 0 or 1"
    )
    size_param: str | None = Field(
        default=default_of(PageNumberPaginator, "size_param"),
        description="Parameter sending page_size (page_number, cursor, next_url, "
        "link_header); null sends none",
    )
    offset_param: str = Field(
        default=default_of(OffsetPaginator, "offset_param"),
        description="offset: offset parameter",
    )
    limit_param: str = Field(
        default=default_of(OffsetPaginator, "limit_param"), description="offset: limit parameter"
    )
    # None: the style's own default (100 for page_number/offset, none sent for the others).
    page_size: int | None = Field(
        default=None,
        description="Records asked for per page; default 100 for page_number/offset, "
        "none sent for cursor/next_url/link_header",
    )
    total_pages_path: str | None = Field(
        default=default_of(PageNumberPaginator, "total_pages_path"),
        description="page_number: JSON path of page count",
    )
    total_path: str | None = Field(
        default=default_of(PageNumberPaginator, "total_path"),
        description="JSON path of the total record count",
    )
    cursor_path: str | None = Field(
        default=default_of(CursorPaginator, "cursor_path"),
        description="cursor: JSON path of the next cursor",
    )
    cursor_param: str = Field(
        default=default_of(CursorPaginator, "cursor_param"), description="cursor: parameter name"
    )
    next_url_path: str | None = Field(
        default=default_of(NextUrlPaginator, "next_url_path"),
        description="next_url: JSON path of the next URL",
    )
    max_pages: int | None = Field(
        default=default_of(Paginator, "max_pages"), description="Stop after N pages"
    )

    def to_paginator(self) -> Paginator:
        """The paginator of ``style`` with the options it takes (checked there)."""
        # An unset page_size leaves the style's own default.
        exclude = {"page_size"} if self.page_size is None else set()
        return paginator_from_config(self.model_dump(exclude=exclude))


_RETRY = HttpRetryPolicy()


class HttpRetryConfig(StepConfig):
    """The ``retry`` block: when and how long to wait before sending a failed request again."""

    max_attempts: int = Field(default=_RETRY.max_attempts, description="Attempts per request")
    backoff: float = Field(default=_RETRY.backoff, description="Base backoff, seconds")
    max_backoff: float = Field(default=_RETRY.max_backoff, description="Cap on one wait, seconds")
    max_total_wait: float = Field(
        default=_RETRY.max_total_wait, description="Cap on all waits of one request, seconds"
    )
    # None: the policy's default statuses.
    statuses: list[int] | None = Field(
        default=None,
        description="HTTP statuses retried; default 408, 425, 429 and every 5xx (other "
        "4xx are refused)",
    )

    def to_policy(self) -> HttpRetryPolicy:
        """The :class:`HttpRetryPolicy` of this block (statuses checked)."""
        return HttpRetryPolicy.from_options(
            self.statuses,
            source="run config retry.statuses",
            **self.model_dump(exclude={"statuses"}),
        )


class HttpIncrementalConfig(StepConfig):
    """The ``incremental`` block: load only records newer than what the table holds."""

    cursor_field: str = Field(description="JSON path of the cursor in a record, e.g. updated_at")
    param: str = Field(description="Request parameter taking the lower bound")
    key: list[str] = Field(
        default=list(default_of(Incremental, "key")),
        description="Fields identifying a record (boundary dedup)",
    )
    initial_value: str | None = Field(
        default=default_of(Incremental, "initial_value"),
        description="Lower bound of the first run",
    )
    table: str | None = Field(
        default=default_of(Incremental, "table"),
        description="Table holding the cursor; default: the load step's table",
    )

    def to_incremental(self) -> Incremental:
        """The :class:`Incremental` of this block (names checked there)."""
        return Incremental(
            cursor_field=self.cursor_field,
            param=self.param,
            key=tuple(self.key),
            initial_value=self.initial_value,
            table=self.table,
        )


class HttpExtractConfig(StepConfig):
    """Run config of the generic HTTP extract step (``http_to_clickhouse``)."""

    url: str = Field(description="Endpoint URL (the first page)")
    headers: dict[str, str] = Field(default={}, description="Extra headers; never put secrets here")
    params: dict[str, Any] = Field(default={}, description="Query parameters of every request")
    timeout: float = Field(
        default=default_of(HttpSource, "timeout"), description="Connect/read timeout, seconds"
    )
    auth: HttpAuthConfig = Field(default_factory=HttpAuthConfig, description="Authentication")
    paginator: HttpPaginatorConfig = Field(
        default_factory=HttpPaginatorConfig, description="Paging style"
    )
    records_path: str | None = Field(
        default=default_of(HttpSourceSpec, "records_path"),
        description="Dotted path of the records list; default: top-level list or the only list",
    )
    concurrency: int = Field(
        default=default_of(HttpSourceSpec, "concurrency"),
        description="Pages in flight (page_number/offset with a total)",
    )
    max_depth: int = Field(
        default=default_of(HttpSourceSpec, "max_depth"),
        description="Nested object levels flattened",
    )
    list_mode: ListModeName = Field(
        default=default_of(HttpSourceSpec, "list_mode").value,
        description=f"{' or '.join(ListMode)}: Array columns for lists of one scalar type, or "
        "every list as JSON text",
    )
    retry: HttpRetryConfig = Field(default_factory=HttpRetryConfig, description="Retry policy")
    incremental: HttpIncrementalConfig | None = Field(
        default=None, description="Incremental loading"
    )

    def to_spec(self) -> HttpSourceSpec:
        """The :class:`HttpSourceSpec` of this run config.

        Raises:
            ConfigError: For invalid values, naming the option and the accepted form.
        """
        return HttpSourceSpec(
            url=self.url,
            headers=dict(self.headers),
            timeout=self.timeout,
            auth=self.auth.to_auth(),
            paginator=self.paginator.to_paginator(),
            records_path=self.records_path,
            params=dict(self.params),
            incremental=self.incremental.to_incremental() if self.incremental else None,
            concurrency=self.concurrency,
            max_depth=self.max_depth,
            list_mode=ListMode(self.list_mode),
            retry=self.retry.to_policy(),
        )


def spec_from_config(config: HttpExtractConfig | Mapping[str, Any]) -> HttpSourceSpec:
    """An ``HttpSourceSpec`` from the run config of a generic HTTP extract step.

    Args:
        config: The step's :class:`HttpExtractConfig`, or the same options as a mapping.

    Raises:
        ConfigError: For invalid values, naming the option and the accepted form.
    """
    if not isinstance(config, HttpExtractConfig):
        config = HttpExtractConfig(**config)
    return config.to_spec()
