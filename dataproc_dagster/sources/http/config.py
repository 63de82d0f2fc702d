"""Run config of a generic HTTP extract step: the Dagster schema and its parsing into a spec.

Only the *name* of the environment variable holding a secret is part of the config, so the
launchpad, the run's config in the UI and the event log never hold the secret itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import Array, Field, Map, Noneable, Permissive, Shape

from dataproc_dagster.pipeline.config_types import choice
from dataproc_dagster.sources.http.auth import ApiKeyLocation, AuthKind, HttpAuth
from dataproc_dagster.sources.http.incremental import Incremental
from dataproc_dagster.sources.http.pagination import PAGINATION_STYLES, paginator_from_config
from dataproc_dagster.sources.http.records import ListMode
from dataproc_dagster.sources.http.retry import HttpRetryPolicy, check_statuses
from dataproc_dagster.sources.http.spec import HttpSourceSpec

AUTH_SCHEMA = Shape(
    {
        "kind": Field(
            choice("HttpAuthKind", AuthKind),
            default_value=AuthKind.NONE.value,
            description=f"One of {', '.join(AuthKind)}",
        ),
        "secret_env": Field(
            Noneable(str),
            default_value=None,
            description="Name of the environment variable holding the token / password / key",
        ),
        "username": Field(Noneable(str), default_value=None, description="basic: user name"),
        "name": Field(
            Noneable(str),
            default_value=None,
            description="api_key: header or query parameter name, e.g. X-API-Key",
        ),
        "location": Field(
            choice("ApiKeyLocation", ApiKeyLocation),
            default_value=ApiKeyLocation.HEADER.value,
            description="api_key: header or query",
        ),
    }
)

PAGINATOR_SCHEMA = Shape(
    {
        "style": Field(
            choice("PaginationStyle", PAGINATION_STYLES),
            default_value="single",
            description=", ".join(PAGINATION_STYLES),
        ),
        "page_param": Field(str, default_value="page", description="page_number: page parameter"),
        "first_page": Field(int, default_value=1, description="page_number: 0 or 1"),
        "size_param": Field(
            Noneable(str),
            default_value="per_page",
            description="Parameter sending page_size (page_number, cursor, next_url, "
            "link_header); null sends none",
        ),
        "offset_param": Field(str, default_value="offset", description="offset: offset parameter"),
        "limit_param": Field(str, default_value="limit", description="offset: limit parameter"),
        "page_size": Field(
            Noneable(int),
            default_value=None,
            description="Records asked for per page; default 100 for page_number/offset, "
            "none sent for cursor/next_url/link_header",
        ),
        "total_pages_path": Field(
            Noneable(str), default_value=None, description="page_number: JSON path of page count"
        ),
        "total_path": Field(
            Noneable(str), default_value=None, description="JSON path of the total record count"
        ),
        "cursor_path": Field(
            Noneable(str), default_value=None, description="cursor: JSON path of the next cursor"
        ),
        "cursor_param": Field(str, default_value="cursor", description="cursor: parameter name"),
        "next_url_path": Field(
            Noneable(str), default_value=None, description="next_url: JSON path of the next URL"
        ),
        "max_pages": Field(Noneable(int), default_value=None, description="Stop after N pages"),
    }
)

RETRY_SCHEMA = Shape(
    {
        "max_attempts": Field(int, default_value=5, description="Attempts per request"),
        "backoff": Field(float, default_value=0.5, description="Base backoff, seconds"),
        "max_backoff": Field(float, default_value=30.0, description="Cap on one wait, seconds"),
        "max_total_wait": Field(
            float, default_value=120.0, description="Cap on all waits of one request, seconds"
        ),
        "statuses": Field(
            Noneable(Array(int)),
            default_value=None,
            description="HTTP statuses retried; default 408, 425, 429 and every 5xx (other "
            "4xx are refused)",
        ),
    }
)

INCREMENTAL_SCHEMA = Shape(
    {
        "cursor_field": Field(
            str, description="JSON path of the cursor in a record, e.g. updated_at"
        ),
        "param": Field(str, description="Request parameter taking the lower bound"),
        "key": Field(
            Array(str), default_value=[], description="Fields identifying a record (boundary dedup)"
        ),
        "initial_value": Field(
            Noneable(str), default_value=None, description="Lower bound of the first run"
        ),
        "table": Field(
            Noneable(str),
            default_value=None,
            description="Table holding the cursor; default: the load step's table",
        ),
    }
)

HTTP_EXTRACT_CONFIG_SCHEMA: dict[str, Field] = {
    "url": Field(str, description="Endpoint URL (the first page)"),
    "headers": Field(
        Map(str, str), default_value={}, description="Extra headers; never put secrets here"
    ),
    "params": Field(
        Permissive(), default_value={}, description="Query parameters of every request"
    ),
    "timeout": Field(float, default_value=30.0, description="Connect/read timeout, seconds"),
    "auth": Field(AUTH_SCHEMA, is_required=False, description="Authentication"),
    "paginator": Field(PAGINATOR_SCHEMA, is_required=False, description="Paging style"),
    "records_path": Field(
        Noneable(str),
        default_value=None,
        description="Dotted path of the records list; default: top-level list or the only list",
    ),
    "concurrency": Field(
        int, default_value=4, description="Pages in flight (page_number/offset with a total)"
    ),
    "max_depth": Field(int, default_value=3, description="Nested object levels flattened"),
    "list_mode": Field(
        choice("ListMode", ListMode),
        default_value=ListMode.AUTO.value,
        description="auto (Array columns) or json",
    ),
    "retry": Field(RETRY_SCHEMA, is_required=False, description="Retry policy"),
    "incremental": Field(
        Noneable(INCREMENTAL_SCHEMA), default_value=None, description="Incremental loading"
    ),
}


def spec_from_config(config: Mapping[str, Any]) -> HttpSourceSpec:
    """An ``HttpSourceSpec`` from the op config of a generic HTTP extract step.

    Raises:
        ConfigError: For invalid values, naming the option and the accepted form.
    """
    auth_cfg = dict(config.get("auth") or {})
    auth = HttpAuth(
        kind=auth_cfg.get("kind", "none"),
        secret_env=auth_cfg.get("secret_env"),
        username=auth_cfg.get("username"),
        name=auth_cfg.get("name"),
        location=auth_cfg.get("location", "header"),
    )
    paginator = paginator_from_config(config.get("paginator") or {})
    retry = _retry_from_config(config.get("retry"))
    inc_cfg = config.get("incremental")
    incremental = None
    if inc_cfg:
        incremental = Incremental(
            cursor_field=inc_cfg["cursor_field"],
            param=inc_cfg["param"],
            key=tuple(inc_cfg.get("key") or ()),
            initial_value=inc_cfg.get("initial_value"),
            table=inc_cfg.get("table"),
        )
    return HttpSourceSpec(
        url=config["url"],
        headers=dict(config.get("headers") or {}),
        timeout=float(config.get("timeout", 30.0)),
        auth=auth,
        paginator=paginator,
        records_path=config.get("records_path"),
        params=dict(config.get("params") or {}),
        incremental=incremental,
        concurrency=int(config.get("concurrency", 4)),
        max_depth=int(config.get("max_depth", 3)),
        list_mode=config.get("list_mode", "auto"),
        retry=retry,
    )


def _retry_from_config(config: Mapping[str, Any] | None) -> HttpRetryPolicy | None:
    if not config:
        return None
    values = {k: v for k, v in config.items() if k != "statuses"}
    statuses = config.get("statuses")
    if statuses is not None:
        values["statuses"] = check_statuses(statuses, source="run config retry.statuses")
    return HttpRetryPolicy(**values)
