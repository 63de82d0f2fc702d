"""The shipped ``deploy/dagster.yaml`` loads on the pinned Dagster and sets what operations need."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, instance_for_test

from dataproc_dagster.deploy import instance_config
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
    # The shipped file sets no python_log_level: under a bare `dagster` command it would
    # override LOG_LEVEL on every run (./run.sh installs it with LOG_LEVEL's value).
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


@pytest.mark.parametrize(
    ("environ", "env_file", "expected"),
    [
        ({}, None, "INFO"),
        ({"LOG_LEVEL": "debug"}, "LOG_LEVEL=INFO\n", "DEBUG"),  # the environment wins
        ({}, "LOG_LEVEL='warning'\n", "WARNING"),
        ({}, "LOG_LEVEL=LOUD\n", "INFO"),  # the code location names the invalid value
    ],
)
def test_log_level_from_environment_then_env_file(
    tmp_path: Path, environ: dict[str, str], env_file: str | None, expected: str
) -> None:
    path = tmp_path / ".env"
    if env_file is not None:
        path.write_text(env_file)
    assert instance_config.log_level(environ, path) == expected


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
@pytest.mark.parametrize("source", ["dagster.yaml", "dagster-postgres.yaml"])
def test_installed_settings_carry_log_level(tmp_path: Path, level: str, source: str) -> None:
    shipped = DAGSTER_YAML.parent / source
    assert instance_config.install(tmp_path, shipped, level) is True
    assert instance_config.install(tmp_path, shipped, level) is False  # unchanged: not rewritten
    installed = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
    expected = yaml.safe_load(shipped.read_text())
    expected["python_logs"]["python_log_level"] = level
    assert installed == expected
    if source == "dagster.yaml":
        with instance_for_test(overrides=installed) as loaded:
            assert loaded.python_log_level == level
            assert loaded.managed_python_loggers == ["dataproc_dagster"]


def test_install_picks_postgres_settings_by_url() -> None:
    assert instance_config.source_file({}).name == "dagster.yaml"
    postgres = {"DAGSTER_POSTGRES_URL": "postgresql+psycopg2://u@127.0.0.1/dagster"}
    assert instance_config.source_file(postgres).name == "dagster-postgres.yaml"


def test_render_adds_block_or_refuses_a_second_level() -> None:
    assert yaml.safe_load(instance_config.render("telemetry:\n  enabled: false\n", "DEBUG")) == {
        "telemetry": {"enabled": False},
        "python_logs": {"python_log_level": "DEBUG"},
    }
    with pytest.raises(ValueError, match="python_log_level already"):
        instance_config.render("python_logs:\n  python_log_level: INFO\n", "DEBUG")


def test_console_config(tmp_path: Path) -> None:
    for level, console in (("DEBUG", "DEBUG"), ("WARNING", "INFO"), ("INFO", "INFO")):
        path = instance_config.console_config(tmp_path, level)
        config = yaml.safe_load(path.read_text())
        assert config == {"loggers": {"console": {"config": {"log_level": console}}}}
