"""The partition window of a run: its partition keys and time range, and window templates.

Extractors read it from ``ctx.window`` (see :mod:`dataproc_dagster.pipeline.partitions`).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dataproc_dagster.core.errors import ConfigError

WINDOW_FIELDS = ("start", "end", "key")


@dataclass(frozen=True)
class PartitionWindow:
    """What a run of a partitioned pipeline reads: its partition keys and time window.

    Attributes:
        keys: The partition keys of the run (several in a single-run backfill of a range).
        start: Start of the time window (inclusive, in the partitions' time zone); ``None``
            for static partitions.
        end: End of the time window (exclusive); ``None`` for static partitions.
    """

    keys: tuple[str, ...]
    start: datetime | None = None
    end: datetime | None = None

    @property
    def key(self) -> str:
        """The partition key, or ``first...last`` for a range."""
        return self.keys[0] if len(self.keys) == 1 else f"{self.keys[0]}...{self.keys[-1]}"

    def describe(self) -> str:
        """``partition 2024-01-02 [2024-01-02T00:00:00+00:00, 2024-01-03T00:00:00+00:00)``."""
        text = f"partition {self.key}"
        if self.start is not None and self.end is not None:
            text += f" [{self.start.isoformat()}, {self.end.isoformat()})"
        return text

    def render(self, template: str, *, option: str) -> str:
        """``template`` with ``{start}``, ``{end}`` and ``{key}`` filled in.

        Datetime fields take a ``strftime`` format after the colon (``{start:%Y-%m-%d}``); with
        none they are ISO 8601. Only those three names are allowed, without attributes or
        indexes.

        Raises:
            ConfigError: For another field, or ``start`` / ``end`` of static partitions.
        """
        values = {"start": self.start, "end": self.end, "key": self.key}
        for name in template_fields(template, option=option):
            if values[name] is None:
                raise ConfigError(
                    f"{option} uses {{{name}}}, but the pipeline's partitions have no time window",
                    source=option,
                    fix="use {key} with static partitions",
                )
        return _WindowFormatter().vformat(template, (), values)


class _WindowFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, datetime) and not format_spec:
            return value.isoformat()
        return super().format_field(value, format_spec)


def template_fields(template: str, *, option: str) -> list[str]:
    """The window fields ``template`` uses; refuses any other field.

    Raises:
        ConfigError: For an unknown field, attribute or index access, or a malformed template.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"{option} is not a valid template ({exc}): {template!r}",
            source=option,
            fix="write fields as {start:%Y-%m-%d}, {end:%Y-%m-%d} or {key}; double braces "
            "for a literal brace",
        ) from None
    names = [name for _text, name, _spec, _conv in parsed if name is not None]
    for name in names:
        if name not in WINDOW_FIELDS:
            raise ConfigError(
                f"{option} uses the field {{{name}}}; only {{start}}, {{end}} and {{key}} exist",
                source=option,
                fix="e.g. '{start:%Y-%m-%d}' for the window's first day",
            )
    return names


def window_of(context: Any) -> PartitionWindow | None:
    """The partition window of a run from its op context; ``None`` when it has no partition."""
    try:
        if not context.has_partition_key and not context.has_partition_key_range:
            return None
        keys = tuple(context.partition_keys)
    except Exception:  # a context of a job without partitions
        return None
    try:
        window = context.partition_time_window
    except Exception:  # static partitions have keys but no time window
        return PartitionWindow(keys)
    return PartitionWindow(keys, window.start, window.end)


def render_window(
    window: PartitionWindow | None, templates: Mapping[str, str], *, option: str
) -> dict[str, str]:
    """Each template of ``templates`` (name -> template) filled from ``window``.

    Raises:
        ConfigError: When the run has no partition (the pipeline is not partitioned).
    """
    if window is None:
        raise ConfigError(
            f"{option} needs a partition window, but this run has none",
            source=option,
            fix="use the extractor in a pipeline built with partitions=..., or drop " + option,
        )
    return {
        name: window.render(str(template), option=f"{option}[{name!r}]")
        for name, template in templates.items()
    }


def window_fields_of(options: Mapping[str, str] | None, *, option: str) -> None:
    """Check every template of ``options`` (parameter -> template) when it is defined."""
    for name, template in (options or {}).items():
        template_fields(str(template), option=f"{option}[{name!r}]")
