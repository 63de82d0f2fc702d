"""Dagster resources of the code location."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster import EnvVar

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.chunk_store import IO_FOLDER, split_url
from dataproc_dagster.core.redaction import is_secret_key, register_secret
from dataproc_dagster.core.settings import FrameworkSettings
from dataproc_dagster.sources.http.resource import HttpResource
from dataproc_dagster.sources.metabase.resource import MetabaseResource


def build_resources(settings: FrameworkSettings) -> dict[str, Any]:
    """The resources every job gets, keyed by resource key. Nothing connects here."""
    resources: dict[str, Any] = {
        "clickhouse": ClickHouseResource.from_settings(settings),
        "metabase": MetabaseResource.from_settings(settings),
        # Extractors with resource_key="http" take base URL, headers, auth and retries from
        # here; its fields can be set per deployment in the launchpad's resources section.
        "http": HttpResource(),
    }
    if settings.chunk_store:
        resources["io_manager"] = store_io_manager(settings)
    return resources


def store_io_manager(settings: FrameworkSettings) -> Any:
    """Step outputs (the small chunk handles) pickled into the chunk store, under ``_io/``.

    With ``CHUNK_STORE`` on S3, a step on another worker reads the handle its input step
    output from there (Dagster's default keeps them under ``DAGSTER_HOME`` of one machine).
    """
    from dagster_aws.s3 import S3PickleIOManager, S3Resource

    bucket, prefix = split_url(settings.chunk_store)
    secret = settings.chunk_store_secret_access_key.get_secret_value()
    register_secret(secret or None)
    return S3PickleIOManager(
        s3_resource=S3Resource(
            endpoint_url=settings.chunk_store_endpoint_url or None,
            region_name=settings.chunk_store_region or None,
            aws_access_key_id=settings.chunk_store_access_key_id or None,
            aws_secret_access_key=secret or None,
        ),
        s3_bucket=bucket,
        s3_prefix="/".join(p for p in (prefix, IO_FOLDER) if p),
    )


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
