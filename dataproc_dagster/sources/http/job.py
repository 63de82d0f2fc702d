"""Deprecated: the generic job ``http_to_clickhouse`` moved to
:mod:`dataproc_dagster.generic_jobs.http_to_clickhouse` (import it from there).

The names are still served from here, with a ``DeprecationWarning``, and loaded only when asked
for, so the source package itself does not depend on the loader.
"""

from __future__ import annotations

import importlib
import warnings

NEW_HOME = "dataproc_dagster.generic_jobs.http_to_clickhouse"
_NAMES = ("PIPELINE", "JOBS")


def __getattr__(name: str) -> object:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"{__name__}.{name} moved to {NEW_HOME}.{name}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(NEW_HOME), name)
