"""Deprecated: the generic job ``http_to_clickhouse`` moved to
:mod:`dataproc_dagster.generic_jobs.http_to_clickhouse` (import it from there).

The names are still served from here, with a ``DeprecationWarning``, and loaded only when asked
for, so the source package itself does not depend on the loader.
"""

from __future__ import annotations

from dataproc_dagster.core.moved import moved_names

NEW_HOME = "dataproc_dagster.generic_jobs.http_to_clickhouse"
_NAMES = ("PIPELINE", "JOBS")


__getattr__ = moved_names(__name__, NEW_HOME, _NAMES)
