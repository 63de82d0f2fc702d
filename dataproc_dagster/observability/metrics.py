"""Step metrics: rows, chunks, seconds, rows per second and peak memory of the step.

This replaces the original framework's ``PerformanceLogger``: wrap any block in
:func:`measure_step` and attach :meth:`StepMetrics.metadata` to an ``Output`` or log it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
_SAMPLE_SECONDS = 0.05


def _reset_high_water_mark() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux); False where unsupported."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _high_water_mark() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class StepMetrics:
    """Counters of one step; fill ``rows`` / ``chunks`` while the step runs."""

    name: str
    rows: int = 0
    chunks: int = 0
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    peak_rss_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, rows: int, chunks: int = 1) -> None:
        """Count ``rows`` more rows in ``chunks`` more chunks."""
        self.rows += rows
        self.chunks += chunks

    @property
    def rows_per_second(self) -> float:
        """Throughput of the step."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def peak_rss_mb(self) -> float:
        """Peak resident memory of the process during the step, in MB."""
        return self.peak_rss_bytes / 1_000_000

    def metadata(self) -> dict[str, Any]:
        """Metadata for an ``Output`` / materialization (shown in the Dagster UI)."""
        return {
            "rows": self.rows,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "peak_memory_mb": round(self.peak_rss_mb, 1),
            **self.extra,
        }

    def summary(self) -> str:
        """One log line."""
        return (
            f"{self.name}: {self.rows} rows in {self.chunks} chunks, {self.seconds:.2f} s, "
            f"{self.rows_per_second:,.0f} rows/s, peak memory {self.peak_rss_mb:,.0f} MB"
        )


@contextmanager
def measure_step(name: str, log: Any = None) -> Iterator[StepMetrics]:
    """Measure a block: wall time and the process's peak RSS while it runs.

    Args:
        name: What is measured (shown in the log line).
        log: A logger (e.g. ``context.log``); when given, the summary is logged at the end
            (at INFO), or, when the block raised, one WARNING line saying it failed after how
            long (not a summary of ``0 rows``, which would read like an empty success).
    """
    metrics = StepMetrics(name=name)
    process = psutil.Process()
    kernel_mark = _reset_high_water_mark() and _high_water_mark() is not None
    peak = [process.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(_SAMPLE_SECONDS):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = None if kernel_mark else threading.Thread(target=sample, daemon=True)
    if sampler:
        sampler.start()
    failed = False
    try:
        yield metrics
    except BaseException:
        failed = True
        raise
    finally:
        stop.set()
        if sampler:
            sampler.join()
        metrics.seconds = time.perf_counter() - metrics.started
        mark = _high_water_mark() if kernel_mark else None
        metrics.peak_rss_bytes = max(mark or 0, peak[0], process.memory_info().rss)
        if log is not None and failed:
            done = f" ({metrics.rows} rows done before)" if metrics.rows else ""
            log.warning(f"{name}: failed after {metrics.seconds:.2f}s{done}")
        elif log is not None:
            log.info(metrics.summary())
