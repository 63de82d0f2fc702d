"""Dagster resources of the code location."""

from __future__ import annotations

from typing import Any

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.settings import FrameworkSettings
from dataproc_dagster.sources.http.resource import HttpResource
from dataproc_dagster.sources.metabase.resource import MetabaseResource


def build_resources(settings: FrameworkSettings) -> dict[str, Any]:
    """The resources every job gets, keyed by resource key. Nothing connects here."""
    return {
        "clickhouse": ClickHouseResource.from_settings(settings),
        "metabase": MetabaseResource.from_settings(settings),
        # Extractors with resource_key="http" take base URL, headers, auth and retries from
        # here; its fields can be set per deployment in the launchpad's resources section.
        "http": HttpResource(),
    }


__all__ = ["ClickHouseResource", "HttpResource", "MetabaseResource", "build_resources"]
