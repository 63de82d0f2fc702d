"""Config types shared by the run-config schemas of the generic jobs and config-driven steps."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from dagster import Enum, EnumValue


def choice(name: str, values: type[StrEnum] | Iterable[str], description: str = "") -> Enum:
    """A Dagster config enum whose values are those of a ``StrEnum`` (or a name registry).

    The Launchpad offers the values and ``dagster job execute`` refuses any other before the
    run starts (a typo such as ``upsrt`` never reaches a step); the op still receives the plain
    string, so the accepted values and the shape of the config do not change.

    Args:
        name: Type name shown in the Launchpad (unique in the code location).
        values: The ``StrEnum`` declaring the accepted strings (declared once: the library
            parses the string the op receives back into that enum), or the names of a registry
            (such as the paginator styles).
        description: Shown with each value.
    """
    return Enum(name, [EnumValue(str(v), description=description or None) for v in values])
