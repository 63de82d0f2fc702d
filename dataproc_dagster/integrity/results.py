"""Typed results of the integrity checks: a status per check and, for the pipeline-table
checks, what was found for each table (problems as structured items, not text)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Union

from dataproc_dagster.core.errors import DataprocError
from dataproc_dagster.migrations.schema import SchemaProblem

# A value the UI and ``--json`` show as is.
JsonValue = Union[str, int, float, bool, None, list["JsonValue"], dict[str, "JsonValue"]]  # noqa: UP007


class CheckStatus(StrEnum):
    """The outcome of a check."""

    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"  # reported, does not fail the run
    SKIPPED = "skipped"


@dataclass(frozen=True)
class TableState:
    """One target table as a pipeline-table check found it.

    Attributes:
        table: ``db.table``.
        columns: ``name type`` of each column, in order (empty when the table does not exist).
        managed_by_migrations: Whether the migrations create the table.
        problems: How it differs from the migrations' expectation.
        keys_present_more_than_once: Sorting keys with more than one row read with ``FINAL``
            (a finding).
        keys_not_merged_yet: Sorting keys stored more than once until ClickHouse merges the
            upsert table (normal; ``FINAL`` reads each once).
    """

    table: str
    columns: tuple[str, ...]
    managed_by_migrations: bool
    problems: tuple[SchemaProblem, ...] = ()
    keys_present_more_than_once: int = 0
    keys_not_merged_yet: int = 0

    @property
    def created(self) -> bool:
        """Whether the table exists."""
        return bool(self.columns)

    @property
    def not_created_yet(self) -> bool:
        """A table only the pipeline creates (on its first run), not there yet: a warning."""
        return not self.columns and not self.managed_by_migrations


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        name: Check name (``clickhouse_reachable``, ``pipeline_tables_<pipeline>``, ...).
        status: Passed, failed, warning (reported, does not fail) or skipped.
        summary: One line saying what was found.
        metadata: Figures for the UI (JSON-serialisable values).
        fix: What to do when the check did not pass.
        seconds: How long the check took.
        tables: For a pipeline-table check, each table it looked at (empty when the check
            could not look, e.g. ClickHouse did not answer).
    """

    name: str
    status: CheckStatus
    summary: str
    metadata: Mapping[str, JsonValue] = field(default_factory=dict)
    fix: str = ""
    seconds: float = 0.0
    tables: tuple[TableState, ...] = ()

    @property
    def failed(self) -> bool:
        """True when the check failed (warnings and skips do not fail)."""
        return self.status == CheckStatus.FAILED

    def table(self, qualified: str) -> TableState | None:
        """What the check found for table ``db.table``, if it looked at it."""
        return next((t for t in self.tables if t.table == qualified), None)

    def line(self) -> str:
        """One report line: status, name, summary and fix."""
        text = f"[{self.status.upper():7}] {self.name}: {self.summary}"
        if self.fix and self.status in (CheckStatus.FAILED, CheckStatus.WARNING):
            text += f"\n          fix: {self.fix}"
        return text

    def to_dict(self) -> dict[str, JsonValue]:
        """The result as plain data (for ``--json``)."""
        return {
            "name": self.name,
            "status": str(self.status),
            "summary": self.summary,
            "fix": self.fix,
            "seconds": round(self.seconds, 3),
            "metadata": dict(self.metadata),
        }


def timed(name: str, body: Callable[[], CheckResult]) -> CheckResult:
    """Run ``body``; any error becomes a failed result that keeps the error's own fix."""
    started = time.perf_counter()
    try:
        result = body()
    except DataprocError as exc:
        result = CheckResult(
            name, CheckStatus.FAILED, exc.message, fix=exc.fix or "", metadata=where_of(exc)
        )
    except Exception as exc:
        result = CheckResult(name, CheckStatus.FAILED, f"{type(exc).__name__}: {first_line(exc)}")
    seconds = time.perf_counter() - started
    return dataclasses.replace(
        result, seconds=seconds, metadata={"seconds": round(seconds, 3), **result.metadata}
    )


def when_failed(result: CheckResult, where: str, fix: str) -> CheckResult:
    """A failed result that says where it looked and, unless its error gave one, the fix."""
    if not result.failed:
        return result
    return dataclasses.replace(
        result, metadata={"where": where, **result.metadata}, fix=result.fix or fix
    )


def where_of(exc: DataprocError) -> dict[str, JsonValue]:
    """The source an error names, as check metadata."""
    return {"source": exc.source} if exc.source else {}


def first_line(exc: BaseException) -> str:
    """The first line of an error's text, at most 500 characters."""
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else ""
