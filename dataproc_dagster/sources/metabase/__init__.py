"""Metabase as a source: REST client, discovery, paged reads past the 2000-row cap, types."""

from dataproc_dagster.sources.metabase.client import MetabaseClient, MetabaseQueryError
from dataproc_dagster.sources.metabase.discovery import DatabaseInfo, FieldInfo, TableInfo
from dataproc_dagster.sources.metabase.paging import ReadStats, read_native, read_table

__all__ = [
    "DatabaseInfo",
    "FieldInfo",
    "MetabaseClient",
    "MetabaseQueryError",
    "ReadStats",
    "TableInfo",
    "read_native",
    "read_table",
]
