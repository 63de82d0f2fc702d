"""Deprecated: the generic jobs ``metabase_to_clickhouse`` and ``metabase_catalog`` moved to
:mod:`dataproc_dagster.generic_jobs.metabase` (import them from there).

The names are still served from here, with a ``DeprecationWarning``, and loaded only when asked
for, so the source package itself does not depend on the loader.
"""

from __future__ import annotations

from dataproc_dagster.core.moved import moved_names

NEW_HOME = "dataproc_dagster.generic_jobs.metabase"
_NAMES = (
    "METABASE_TO_CLICKHOUSE",
    "JOBS",
    "metabase_catalog",
    "metabase_catalog_op",
    "CatalogConfig",
)


__getattr__ = moved_names(__name__, NEW_HOME, _NAMES)
