"""Retry policy: exponential backoff with jitter, honouring ``Retry-After``."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from dataproc_dagster.core.errors import ConfigError

# The 4xx that say "try again later" (Request Timeout, Too Early, Too Many Requests); every
# other 4xx describes the request itself and would fail the same way again.
RETRYABLE_4XX = frozenset({408, 425, 429})
# A GET is idempotent, so every server-side failure is worth another try by default.
RETRY_STATUSES = RETRYABLE_4XX | frozenset(range(500, 600))


def describe_statuses(statuses: Iterable[int]) -> str:
    """``408, 425, 429 and every 5xx`` style text for messages and docs."""
    wanted = set(statuses)
    every_5xx = set(range(500, 600)) <= wanted
    shown = sorted(s for s in wanted if not (every_5xx and 500 <= s < 600))
    parts = [str(s) for s in shown] + (["every 5xx"] if every_5xx else [])
    if len(parts) > 1:
        return ", ".join(parts[:-1]) + " and " + parts[-1]
    return parts[0] if parts else "none"


def check_statuses(statuses: Iterable[int], *, source: str = "HTTP retry policy") -> frozenset[int]:
    """``statuses`` as a frozenset, or :class:`ConfigError` for one that must not be retried.

    Only 408, 425, 429 and 5xx may be retried: any other status describes the request, and
    sending it again would only fail again (or, for 2xx/3xx, drop a good answer).
    """
    wanted = frozenset(int(s) for s in statuses)
    refused = sorted(s for s in wanted if s not in RETRYABLE_4XX and not 500 <= s < 600)
    if refused:
        raise ConfigError(
            f"retry statuses {', '.join(map(str, refused))} cannot be retried: only 408, 425, "
            "429 and 5xx statuses say that the same request may succeed later",
            source=source,
            fix="list only 408, 425, 429 and 500-599 in the retry statuses (default: "
            f"{describe_statuses(RETRY_STATUSES)})",
        )
    return wanted


@dataclass(frozen=True)
class HttpRetryPolicy:
    """When and how long to wait before sending a failed HTTP request again.

    Named apart from Dagster's ``RetryPolicy``, which retries a whole step.

    Attributes:
        max_attempts: Attempts per request, the first one included (1 = no retry).
        backoff: Base wait in seconds; attempt ``n`` waits about ``backoff * 2 ** (n - 1)``.
        max_backoff: Cap on one computed wait (a server's ``Retry-After`` may ask for more).
        max_total_wait: Cap on the summed waits for one request; past it the request fails.
        jitter: Randomise each computed wait within [50 %, 100 %] so that clients spread out.
            A server's ``Retry-After`` is used as it is.
        max_retry_after: Cap on the wait a server's ``Retry-After`` asks for; ``None`` honours
            it up to ``max_total_wait`` (past it the request fails instead of waiting).
        statuses: HTTP statuses that are retried (default 408, 425, 429 and every 5xx; only
            those may be listed). Connection errors, timeouts and a successful answer whose
            body is not JSON (cut off, or mangled by a proxy) are always retried.
    """

    max_attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_total_wait: float = 120.0
    jitter: bool = True
    statuses: frozenset[int] = RETRY_STATUSES
    max_retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.backoff, self.max_backoff, self.max_total_wait, self.max_retry_after or 0) < 0:
            raise ValueError(
                "backoff, max_backoff, max_total_wait and max_retry_after must not be negative"
            )
        object.__setattr__(self, "statuses", check_statuses(self.statuses))

    @classmethod
    def from_options(
        cls, statuses: Iterable[int] | None = None, *, source: str, **options: Any
    ) -> HttpRetryPolicy:
        """A policy from configured options; ``statuses`` (``None`` = the default ones) are
        checked with an error naming ``source``, the option they came from."""
        if statuses is not None:
            options["statuses"] = check_statuses(statuses, source=source)
        return cls(**options)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        A server's ``Retry-After`` wins over the computed backoff (capped at
        ``max_retry_after`` when that is set).
        """
        if retry_after is not None:
            wait = max(0.0, retry_after)
            return wait if self.max_retry_after is None else min(wait, self.max_retry_after)
        wait = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        if self.jitter:
            wait *= random.uniform(0.5, 1.0)
        return wait

    def may_retry(self, attempt: int, delay: float, waited: float) -> bool:
        """Whether failed attempt ``attempt`` may be followed by a wait of ``delay`` seconds.

        Args:
            attempt: The attempt that failed (1-based).
            delay: The wait before the next attempt (from :meth:`delay`).
            waited: Seconds already waited for this request.
        """
        return attempt < self.max_attempts and waited + delay <= self.max_total_wait

    def wait_budget_note(self, attempt: int, delay: float) -> str:
        """Why the retries stopped before ``max_attempts``: ``""`` when they were all used."""
        if attempt >= self.max_attempts:
            return ""
        return (
            f"; the next wait of {delay:.1f}s would pass max_total_wait ({self.max_total_wait:g}s)"
        )


# The name this class had first; code that imports it from this module keeps working.
RetryPolicy = HttpRetryPolicy


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
