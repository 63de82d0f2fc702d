"""Executors that spread steps over workers are refused on one-machine storage."""

from __future__ import annotations

import pytest

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.settings import load_settings
from dataproc_dagster.pipeline.workers import check_shared_storage


def test_one_machine_executors_need_nothing_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("CHUNK_STORE", raising=False)
    for executor in ("in_process", "multiprocess", "execute_in_process_executor"):
        check_shared_storage(executor, load_settings())


def test_the_embedded_engine_refuses_several_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    monkeypatch.setenv("CHUNK_STORE", "s3://bucket/chunks")
    with pytest.raises(ConfigError, match="'celery' executor runs steps on several workers") as e:
        check_shared_storage("celery", load_settings())
    assert "CLICKHOUSE_URL at a ClickHouse server every worker reaches" in str(e.value)


def test_local_chunks_refuse_several_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", "http://clickhouse.internal:8123")
    monkeypatch.delenv("CHUNK_STORE", raising=False)
    with pytest.raises(ConfigError, match="stay in this machine's data folder") as e:
        check_shared_storage("k8s", load_settings())
    assert "CHUNK_STORE=s3://bucket/prefix" in str(e.value)
    monkeypatch.setenv("CHUNK_STORE", "s3://bucket/chunks")
    check_shared_storage("k8s", load_settings())
