"""Parsing a mode, policy or style given as text into its ``StrEnum``.

Factories accept both the enum member and its string value (``mode="upsert"`` or
``mode=WriteMode.UPSERT``); an unknown value fails with an error that lists the valid ones.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from dataproc_dagster.core.errors import ConfigError

E = TypeVar("E", bound=StrEnum)


def parse_choice(enum: type[E], value: E | str, *, what: str, source: str | None = None) -> E:
    """``value`` as a member of ``enum``.

    Args:
        enum: The accepted values.
        value: A member of ``enum`` or its string value.
        what: The option, as the error names it (``write mode``, ``schema_drift policy``).
        source: Where the value comes from (pipeline target, URL), for the error.

    Raises:
        ConfigError: Naming the value and the valid ones.
    """
    try:
        return enum(value)
    except ValueError:
        raise ConfigError(
            f"unknown {what} {value!r}",
            source=source,
            fix=f"use one of {', '.join(enum)}",
        ) from None
