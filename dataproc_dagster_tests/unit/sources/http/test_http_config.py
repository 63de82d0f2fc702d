"""The ``dagster.Config`` models of the generic HTTP extract step: choices and defaults."""

from __future__ import annotations

import pytest

from dataproc_dagster.sources.http.auth import NO_AUTH, AuthKind
from dataproc_dagster.sources.http.client import HttpSource
from dataproc_dagster.sources.http.config import (
    HttpExtractConfig,
    HttpIncrementalConfig,
    HttpPaginatorConfig,
    spec_from_config,
)
from dataproc_dagster.sources.http.pagination import PAGINATORS, make_paginator
from dataproc_dagster.sources.http.records import ListMode
from dataproc_dagster.sources.http.retry import HttpRetryPolicy
from dataproc_dagster.sources.http.spec import HttpSourceSpec


def test_the_model_defaults_are_the_spec_defaults() -> None:
    config = HttpExtractConfig(url="https://api.example/items")
    spec = config.to_spec()
    plain = HttpSourceSpec(url="https://api.example/items")
    assert spec.timeout == HttpSource().timeout
    assert spec.auth == NO_AUTH
    assert spec.paginator == plain.paginator == make_paginator("single")
    assert spec.retry == HttpRetryPolicy()
    for option in ("records_path", "concurrency", "max_depth", "list_mode", "incremental"):
        assert getattr(spec, option) == getattr(plain, option), option
    assert spec.list_mode is ListMode.AUTO


@pytest.mark.parametrize("style", list(PAGINATORS))
def test_each_paginator_style_gets_its_own_defaults(style: str) -> None:
    needs_path = {"cursor": {"cursor_path": "next"}, "next_url": {"next_url_path": "next"}}
    options = needs_path.get(style, {})
    block = HttpPaginatorConfig(style=style, **options)  # type: ignore[arg-type]
    assert block.to_paginator() == make_paginator(style, **options)


def test_the_incremental_block_defaults_are_those_of_incremental() -> None:
    block = HttpIncrementalConfig(cursor_field="updated_at", param="since")
    assert block.to_incremental().key == ()
    assert block.to_incremental().initial_value is None and block.to_incremental().table is None


def test_a_mapping_is_parsed_like_run_config() -> None:
    spec = spec_from_config(
        {
            "url": "https://api.example/items",
            "auth": {"kind": "bearer", "secret_env": "TOKEN"},
            "paginator": {"style": "offset", "page_size": 50},
            "retry": {"max_attempts": 2, "statuses": [503]},
            "incremental": {"cursor_field": "updated_at", "param": "since", "key": ["id"]},
        }
    )
    assert spec.auth.kind is AuthKind.BEARER and spec.auth.secret_env == "TOKEN"
    assert spec.paginator == make_paginator("offset", page_size=50)
    assert spec.retry is not None and spec.retry.max_attempts == 2
    assert spec.retry.statuses == frozenset({503})
    assert spec.incremental is not None and spec.incremental.key == ("id",)
