"""Helpers shared by the ``dagster.Config`` models of the generic jobs and config-driven steps.

Choices are ``typing.Literal`` fields: the Launchpad offers the values and refuses any other
before the run starts, and the run config keeps the plain lowercase strings (a Python ``Enum``
field would take the member *name*, ``REPLACE``, instead). Each ``Literal`` mirrors a
``StrEnum`` of the library; a unit test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any


def default_of(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls``, so a config model repeats no default.

    Raises:
        KeyError: When ``cls`` has no such field, or the field has no default.
    """
    for item in fields(cls):
        if item.name != name:
            continue
        if item.default is not MISSING:
            return item.default
        if item.default_factory is not MISSING:
            return item.default_factory()
        break
    raise KeyError(f"{cls.__name__}.{name} has no default")
