"""Shared fixtures: a real embedded ClickHouse (chDB) per test, isolated settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dataproc_dagster.resources.clickhouse import ClickHouseResource
from dataproc_dagster.settings import get_settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``DATAPROC_DATA_DIR`` (and so the embedded ClickHouse) at a fresh folder."""
    directory = tmp_path / "dataproc"
    monkeypatch.setenv("DATAPROC_DATA_DIR", str(directory))
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    get_settings.cache_clear()
    yield directory
    get_settings.cache_clear()


@pytest.fixture
def clickhouse(data_dir: Path) -> ClickHouseResource:
    """A ``ClickHouseResource`` on a fresh embedded ClickHouse directory."""
    return ClickHouseResource(url=f"chdb://{data_dir / 'clickhouse'}", lock_timeout=30)
