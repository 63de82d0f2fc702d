"""Deprecated: the generic jobs ``metabase_to_clickhouse`` and ``metabase_catalog`` moved to
:mod:`dataproc_dagster.generic_jobs.metabase` (import them from there).

The names are still served from here, with a ``DeprecationWarning``, and loaded only when asked
for, so the source package itself does not depend on the loader.
"""

from __future__ import annotations

import importlib
import warnings

NEW_HOME = "dataproc_dagster.generic_jobs.metabase"
_NAMES = (
    "METABASE_TO_CLICKHOUSE",
    "JOBS",
    "metabase_catalog",
    "metabase_catalog_op",
    "CatalogConfig",
)


def __getattr__(name: str) -> object:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"{__name__}.{name} moved to {NEW_HOME}.{name}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(NEW_HOME), name)
