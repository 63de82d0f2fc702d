"""Metabase as a source: REST client, discovery, paged reads past the 2000-row cap, types."""

from dataproc_dagster.sources.metabase.client import MetabaseClient
from dataproc_dagster.sources.metabase.discovery import DatabaseInfo, FieldInfo, MetabaseTable
from dataproc_dagster.sources.metabase.native_reader import read_native
from dataproc_dagster.sources.metabase.paging import ReadStats
from dataproc_dagster.sources.metabase.responses import MetabaseQueryError
from dataproc_dagster.sources.metabase.table_reader import read_table

__all__ = [
    "DatabaseInfo",
    "FieldInfo",
    "MetabaseClient",
    "MetabaseQueryError",
    "MetabaseTable",
    "ReadStats",
    "read_native",
    "read_table",
]
