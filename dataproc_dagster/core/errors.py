"""Errors the framework raises: each names the pipeline, the source and the fix."""

from __future__ import annotations


class DataprocError(Exception):
    """Base error: a message that names where it happened and how to fix it.

    Args:
        message: What went wrong.
        pipeline: The pipeline (job) name, when known.
        source: The source or target involved (URL with secrets masked, table, file).
        fix: What the user should do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        pipeline: str | None = None,
        source: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.pipeline = pipeline
        self.source = source
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.pipeline:
            parts.append(f"[pipeline {self.pipeline}]")
        if self.source:
            parts.append(f"[{self.source}]")
        parts.append(self.message)
        text = " ".join(parts)
        if self.fix:
            text += f" Fix: {self.fix}"
        return text

    def with_pipeline(self, pipeline: str) -> DataprocError:
        """Return the same error, naming ``pipeline`` if it did not yet."""
        if self.pipeline is None:
            self.pipeline = pipeline
            self.args = (self._render(),)
        return self

    def __str__(self) -> str:
        return self._render()


class ConfigError(DataprocError):
    """Invalid settings or pipeline definition."""


class SourceError(DataprocError):
    """An extractor's source failed or answered something unusable."""


class SchemaError(DataprocError):
    """Data does not fit the target table or the chunk contract."""


class LoadError(DataprocError):
    """Writing to ClickHouse failed; the target table was left as it was."""


class LockTimeoutError(DataprocError):
    """The embedded ClickHouse directory stayed locked by another process too long."""
