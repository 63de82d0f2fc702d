"""Metabase's retry options on the shared :class:`HttpRetryPolicy`, and what is retried.

The policy's statuses (408, 425, 429 and every 5xx) are retried, except a 5xx other than
502/503/504 whose body is a failed-query body (Metabase's answer about the query).
"""

from __future__ import annotations

import math

from dataproc_dagster.sources.http.retry import HttpRetryPolicy

# Retried statuses that say the query was not run (overload, gateway, rate limit): retried even
# with a failed-query body (a saturated connection pool answers 503 with one). Any other 5xx
# with a failed-query body is Metabase's answer about the query and would fail again.
NOT_THE_QUERY = frozenset({408, 425, 429, 502, 503, 504})
# The Metabase retry options (resource fields, run config) and their defaults.
DEFAULT_MAX_RETRIES = 5
DEFAULT_RETRY_BACKOFF = 0.5
DEFAULT_MAX_RETRY_WAIT = 60.0


def metabase_retry_policy(
    max_retries: int = DEFAULT_MAX_RETRIES,
    backoff: float = DEFAULT_RETRY_BACKOFF,
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
) -> HttpRetryPolicy:
    """The shared :class:`HttpRetryPolicy` for the Metabase retry options.

    ``max_retries`` counts the attempts after the first (``max_attempts = max_retries + 1``);
    ``max_retry_wait`` caps every single wait, a server's ``Retry-After`` included, so the
    summed waits never pass ``max_retries * max_retry_wait``. Computed waits are jittered.

    Args:
        max_retries: Further attempts after a retryable failure (negative = 0).
        backoff: First wait in seconds, doubled per attempt (negative = 0).
        max_retry_wait: Longest single wait in seconds, whatever ``Retry-After`` asks.
    """
    retries = max(0, max_retries)
    cap = max(0.0, max_retry_wait)
    return HttpRetryPolicy(
        max_attempts=retries + 1,
        backoff=max(0.0, backoff),
        max_backoff=cap,
        max_retry_after=cap,
        # Each wait is capped instead, so the summed waits stay under max_retries * cap.
        max_total_wait=math.inf,
    )
