"""Helpers shared by the ``dagster.Config`` models of the generic jobs and config-driven steps.

Choices are ``typing.Literal`` fields: the Launchpad offers the values and refuses any other
before the run starts, and the run config keeps the plain lowercase strings (a Python ``Enum``
field would take the member *name*, ``REPLACE``, instead). Each ``Literal`` mirrors a
``StrEnum`` of the library; a unit test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from dagster import Config
from pydantic import model_validator


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


class StepConfig(Config):
    """Base of the run-config models of steps: ``null`` for an optional field means its default.

    Dagster lets ``null`` through config validation for every field that has a default; without
    this, ``headers: null`` or ``max_attempts: null`` would pass the Launchpad and then fail when
    the step starts with a bare validation error, instead of running with the default.
    """

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        optional = {
            info.alias or name for name, info in cls.model_fields.items() if not info.is_required()
        }
        return {
            key: value for key, value in data.items() if value is not None or key not in optional
        }
