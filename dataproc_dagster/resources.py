"""Dagster resources of the code location."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster import EnvVar

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.redaction import is_secret_key, register_secret
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


def register_resource_secrets(resources: Mapping[str, Any]) -> None:
    """Register the secret fields (``password``, ``api_key``, ``secret``, ...) of resources.

    A field given as ``EnvVar("NAME")`` registers the variable's current value, not its name.
    """
    for resource in resources.values():
        fields = getattr(type(resource), "model_fields", {})
        for field_name in fields:
            if field_name != "secret" and not is_secret_key(field_name):
                continue
            value = getattr(resource, field_name, None)
            if isinstance(value, EnvVar):
                register_secret(os.environ.get(str(value)))
            elif isinstance(value, str):
                register_secret(value)


__all__ = ["ClickHouseResource", "HttpResource", "MetabaseResource", "build_resources"]
