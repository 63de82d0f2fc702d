"""Retry policy: exponential backoff with jitter, honouring ``Retry-After``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending a failed request again.

    Attributes:
        max_attempts: Attempts per request, the first one included (1 = no retry).
        backoff: Base wait in seconds; attempt ``n`` waits about ``backoff * 2 ** (n - 1)``.
        max_backoff: Cap on one computed wait (a server's ``Retry-After`` may ask for more).
        max_total_wait: Cap on the summed waits for one request; past it the request fails.
        jitter: Randomise each computed wait within [50 %, 100 %] so that clients spread out.
        statuses: HTTP statuses that are retried; connection errors and timeouts always are.
    """

    max_attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_total_wait: float = 120.0
    jitter: bool = True
    statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff < 0 or self.max_backoff < 0 or self.max_total_wait < 0:
            raise ValueError("backoff, max_backoff and max_total_wait must not be negative")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        A server's ``Retry-After`` wins over the computed backoff.
        """
        if retry_after is not None:
            return max(0.0, retry_after)
        wait = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        if self.jitter:
            wait *= random.uniform(0.5, 1.0)
        return wait


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns ``None`` when the header is absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
