"""A failed step logs that it failed, not a summary that reads like an empty success."""

from __future__ import annotations

import logging

import pytest

from dataproc_dagster import measure_step


def test_a_failed_block_logs_a_warning_not_a_zero_rows_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.failed_step")
    with (
        caplog.at_level(logging.INFO, logger="test.failed_step"),
        pytest.raises(RuntimeError),
        measure_step("orders__load", log),
    ):
        raise RuntimeError("ClickHouse refused the insert")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("orders__load: failed after ")
    assert "0 rows" not in record.getMessage() and "rows/s" not in record.getMessage()


def test_a_successful_block_logs_its_summary(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.ok_step")
    with (
        caplog.at_level(logging.INFO, logger="test.ok_step"),
        measure_step("orders__load", log) as metrics,
    ):
        metrics.add(10, 1)
    [record] = caplog.records
    assert record.levelno == logging.INFO and "10 rows" in record.getMessage()


def test_the_drivers_context_free_warning_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """clickhouse-connect's "Unexpected Http Driver Exception" says neither server nor cause;
    the framework's own error says both, once."""
    from dataproc_dagster.observability.logging import DRIVER_LOGGER, configure_logging

    configure_logging()
    driver = logging.getLogger(DRIVER_LOGGER)
    with caplog.at_level(logging.DEBUG, logger=DRIVER_LOGGER):
        driver.warning("Unexpected Http Driver Exception")
        driver.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
