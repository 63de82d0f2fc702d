"""The ``clickhouse`` pool limit is written into the instance also when another command writes
it at the same moment (three ``./run.sh job`` started together on a fresh instance)."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import instance_for_test
from sqlalchemy.exc import IntegrityError

from dataproc_dagster.core.settings import load_settings
from dataproc_dagster.pipeline.pools import apply_pool_limit
from dataproc_dagster.pipeline.steps import CLICKHOUSE_POOL


def test_a_concurrent_first_insert_is_followed_by_an_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLICKHOUSE_POOL_LIMIT", "3")
    with instance_for_test() as instance:
        storage = instance.event_log_storage
        real = storage.set_concurrency_slots
        calls: list[int] = []

        def racing(key: str, limit: int) -> Any:
            calls.append(limit)
            if len(calls) == 1:  # the other command inserted the row first
                real(key, 1)
                raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
            return real(key, limit)

        monkeypatch.setattr(storage, "set_concurrency_slots", racing)
        assert apply_pool_limit(instance, load_settings()) == 3
        assert calls == [3, 3]
        assert storage.get_concurrency_info(CLICKHOUSE_POOL).slot_count == 3


def test_another_storage_error_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    with instance_for_test() as instance:

        def broken(key: str, limit: int) -> None:
            raise RuntimeError("database is locked")

        monkeypatch.setattr(instance.event_log_storage, "set_concurrency_slots", broken)
        with pytest.raises(RuntimeError, match="database is locked"):
            apply_pool_limit(instance, load_settings())
