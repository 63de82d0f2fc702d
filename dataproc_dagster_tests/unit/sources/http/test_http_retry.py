"""Retry policy: backoff growth, jitter bounds and Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dataproc_dagster.sources.http.retry import RetryPolicy, parse_retry_after


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=3.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_between_half_and_full_wait() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=100.0, jitter=True)
    waits = [policy.delay(3) for _ in range(200)]
    assert all(2.0 <= w <= 4.0 for w in waits)
    assert len(set(waits)) > 1


def test_retry_after_wins_over_backoff() -> None:
    assert RetryPolicy(jitter=False).delay(1, retry_after=7.0) == 7.0


def test_retry_after_in_seconds_and_as_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:05 GMT", now=now) == 5.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_invalid_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_max_retry_after_caps_a_servers_wait_and_the_budget_decides() -> None:
    policy = RetryPolicy(max_attempts=3, max_total_wait=10.0, max_retry_after=2.0)
    assert policy.delay(1, retry_after=3600) == 2.0
    assert RetryPolicy().delay(1, retry_after=3600) == 3600  # uncapped by default
    assert policy.may_retry(1, 2.0, 0.0) and not policy.may_retry(3, 0.1, 0.0)
    assert not policy.may_retry(2, 2.0, 9.0)
    assert policy.wait_budget_note(3, 1.0) == ""
    assert "would pass max_total_wait (10s)" in policy.wait_budget_note(2, 2.0)
    with pytest.raises(ValueError, match="max_retry_after"):
        RetryPolicy(max_retry_after=-1)
