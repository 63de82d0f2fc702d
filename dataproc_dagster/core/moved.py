"""Names served from an old module path after they moved, with a ``DeprecationWarning``."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable


def moved_names(module: str, new_home: str, names: Iterable[str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that serves ``names`` from ``new_home``, warning on each use.

    The new module is imported only when a name is asked for, so the old package does not
    depend on it at import time.
    """
    served = frozenset(names)

    def __getattr__(name: str) -> object:
        if name not in served:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(f"{module}.{name} moved to {new_home}.{name}", DeprecationWarning, 2)
        return getattr(importlib.import_module(new_home), name)

    return __getattr__
