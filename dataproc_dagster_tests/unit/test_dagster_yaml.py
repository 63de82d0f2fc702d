"""The shipped ``deploy/dagster.yaml`` loads on the pinned Dagster and sets what operations need."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, instance_for_test

from dataproc_dagster.observability.logging import LogFileHandler

DAGSTER_YAML = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test(overrides=yaml.safe_load(DAGSTER_YAML.read_text())) as loaded:
        yield loaded


def test_run_queue_and_pools(instance: DagsterInstance) -> None:
    config = instance.get_concurrency_config()
    assert config.run_queue_config is not None
    assert config.run_queue_config.max_concurrent_runs == 4
    assert config.run_queue_config.tag_concurrency_limits == [
        {"key": "dataproc/pipeline", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    assert config.pool_config.default_pool_limit == 1
    assert config.pool_config.pool_granularity is not None
    assert config.pool_config.pool_granularity.value == "op"


def test_crashed_runs_free_their_slots(instance: DagsterInstance) -> None:
    monitoring = instance.run_monitoring_settings
    assert monitoring["enabled"] is True
    assert monitoring["free_slots_after_run_end_seconds"] == 60
    assert instance.run_monitoring_start_timeout_seconds == 180


def test_framework_loggers_managed_and_written_to_files(instance: DagsterInstance) -> None:
    assert instance.managed_python_loggers == ["dataproc_dagster"]
    # A python_log_level would override LOG_LEVEL on every run.
    assert instance.python_log_level is None
    handlers = instance.get_handlers()
    assert any(isinstance(h, LogFileHandler) for h in handlers)


def test_postgres_settings_are_the_local_ones_plus_postgres_storage() -> None:
    local = yaml.safe_load(DAGSTER_YAML.read_text())
    postgres = yaml.safe_load((DAGSTER_YAML.parent / "dagster-postgres.yaml").read_text())
    storage = postgres.pop("storage")
    assert postgres == local
    # dagster-postgres reads the URL, whose scheme names psycopg2 (run.sh rewrites a bare one).
    assert storage == {"postgres": {"postgres_url": {"env": "DAGSTER_POSTGRES_URL"}}}
