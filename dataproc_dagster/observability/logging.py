"""Logging of the framework: ``LOG_LEVEL``, secret masking, Dagster capture and log files.

- Framework code logs through :func:`get_logger` (``dataproc_dagster.<name>`` loggers). The
  instance's ``dagster.yaml`` lists ``dataproc_dagster`` under
  ``python_logs.managed_python_loggers``, so inside a run these messages land in the run's event
  log (the UI's log view) next to ``context.log`` messages.
- :func:`configure_logging` sets the ``dataproc_dagster`` level from ``LOG_LEVEL`` and installs
  secret masking: every log record of the framework, of Dagster's ``context.log`` and of httpx
  goes through :func:`~dataproc_dagster.core.redaction.mask_secrets` (the values of secret
  environment variables, the framework's secret settings, registered secrets, ``Bearer`` tokens
  and secret URL parameters become ``***``) before any handler sees it.
- :class:`LogFileHandler` writes the run logs to files:
  ``logs/system/application.log`` (every run) and ``logs/jobs/<job>.log`` (one per job). It is
  enabled in ``dagster.yaml`` under ``python_logs.dagster_handler_config``.
- :func:`http_debug_hooks` gives httpx clients one DEBUG line per request: method, masked URL,
  status and time.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dataproc_dagster.core.redaction import mask_secrets, mask_url, register_secret
from dataproc_dagster.core.settings import FrameworkSettings, get_settings

ROOT_LOGGER = "dataproc_dagster"
# Loggers whose records are masked: the framework's, Dagster's (``context.log`` and the events
# it writes) and httpx's (it logs every request URL at INFO).
MASKED_LOGGERS = (ROOT_LOGGER, "dagster", "httpx", "httpcore")
# Dagster events written to the log files (besides every message at INFO and up).
FILE_EVENTS = frozenset(
    {
        "RUN_START",
        "RUN_SUCCESS",
        "RUN_FAILURE",
        "RUN_CANCELED",
        "STEP_START",
        "STEP_SUCCESS",
        "STEP_FAILURE",
        "STEP_UP_FOR_RETRY",
        "ASSET_MATERIALIZATION",
        "ASSET_CHECK_EVALUATION",
    }
)

_lock = threading.Lock()
_installed = False


def get_logger(name: str = "") -> logging.Logger:
    """The framework logger ``dataproc_dagster.<name>`` (captured into Dagster's run log).

    Args:
        name: Dotted suffix, e.g. ``http`` or ``integrity``; empty for the package logger.
    """
    return logging.getLogger(f"{ROOT_LOGGER}.{name}" if name else ROOT_LOGGER)


def _mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed %-format: leave it to the handler to report
        return
    masked = mask_secrets(message)
    if masked != message:
        record.msg = masked
        record.args = ()


def _install_record_masking() -> None:
    """Wrap the log record factory so that records of :data:`MASKED_LOGGERS` are masked.

    A factory, not a filter, because a logger's filters do not see records propagated from its
    child loggers, and Dagster's capture handler is attached per run.
    """
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if isinstance(record.name, str) and record.name.startswith(MASKED_LOGGERS):
                _mask_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def is_configured() -> bool:
    """True once :func:`configure_logging` installed the masking."""
    return _installed


def configure_logging(settings: FrameworkSettings | None = None) -> None:
    """Apply ``LOG_LEVEL`` to the framework loggers and install secret masking (idempotent).

    Called when the code location's definitions load, so it holds in the webserver, the daemon,
    the run workers and ``dagster job execute``.

    Args:
        settings: Framework settings (default: the process-wide ones).
    """
    settings = settings or get_settings()
    # Settings may come from .env, which is not in os.environ.
    for secret in (
        settings.clickhouse_password,
        settings.metabase_api_key,
        settings.metabase_password,
    ):
        register_secret(secret.get_secret_value())
    get_logger().setLevel(settings.log_level_number)
    _install_record_masking()
    _drop_context_free_driver_warnings()


# clickhouse-connect logs this line, without the server or the cause, right before it raises the
# error that the framework reports with both ("ClickHouse stopped answering: ..."): not repeated.
DRIVER_LOGGER = "clickhouse_connect.driver._backend.http_sync"
DRIVER_NOISE = "Unexpected Http Driver Exception"


def _drop_driver_noise(record: logging.LogRecord) -> bool:
    return record.msg != DRIVER_NOISE


def _drop_context_free_driver_warnings() -> None:
    """Filter :data:`DRIVER_NOISE` out of the ClickHouse driver's logger (idempotent)."""
    driver = logging.getLogger(DRIVER_LOGGER)
    if _drop_driver_noise not in driver.filters:
        driver.addFilter(_drop_driver_noise)


def _request_line(log: logging.Logger, mask: Callable[[str], str], response: Any) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    request = response.request
    started = request.extensions.get("dataproc_started")
    elapsed = (time.perf_counter() - started) * 1000 if started else 0.0
    log.debug(
        "HTTP %s %s -> %s in %.0f ms",
        request.method,
        mask(str(request.url)),
        response.status_code,
        elapsed,
    )


def _mark_start(request: Any) -> None:
    request.extensions["dataproc_started"] = time.perf_counter()


def http_debug_hooks(
    mask: Callable[[str], str] = mask_url, logger: logging.Logger | None = None
) -> dict[str, list[Callable[[Any], Any]]]:
    """httpx ``event_hooks`` logging each request at DEBUG: method, masked URL, status, time.

    Example:
        ``httpx.Client(event_hooks=http_debug_hooks(source.mask))``

    Args:
        mask: Turns a URL into its masked form (e.g. ``HttpSource.mask``).
        logger: Where the lines go (default ``dataproc_dagster.sources.http``).
    """
    log = logger or get_logger("http")

    def on_response(response: Any) -> None:
        _request_line(log, mask, response)

    return {"request": [_mark_start], "response": [on_response]}


def async_http_debug_hooks(
    mask: Callable[[str], str] = mask_url, logger: logging.Logger | None = None
) -> dict[str, list[Callable[[Any], Any]]]:
    """:func:`http_debug_hooks` for ``httpx.AsyncClient`` (whose hooks must be coroutines)."""
    log = logger or get_logger("http")

    async def on_request(request: Any) -> None:
        _mark_start(request)

    async def on_response(response: Any) -> None:
        _request_line(log, mask, response)

    return {"request": [on_request], "response": [on_response]}


class LogFileHandler(logging.Handler):
    """Writes Dagster run logs to ``<dir>/system/application.log`` and ``<dir>/jobs/<job>.log``.

    Configured in ``dagster.yaml`` (``python_logs.dagster_handler_config``); records arrive
    with Dagster's run metadata and already masked. Files are opened per record in append mode,
    so several run processes can write to them and log rotation needs no signal.

    Args:
        directory: Log folder (default: ``DATAPROC_LOG_DIR``, else ``logs`` in the working
            directory of the webserver / daemon).
        per_job: Also write one file per job.
    """

    def __init__(self, directory: str | None = None, per_job: bool = True) -> None:
        super().__init__()
        self.directory = Path(directory or os.environ.get("DATAPROC_LOG_DIR") or "logs")
        self.per_job = per_job

    def filter(self, record: logging.LogRecord) -> bool:
        """Messages at INFO and up, run and step lifecycle events (Dagster logs them at DEBUG)
        and framework DEBUG lines when ``LOG_LEVEL`` is DEBUG; not Dagster's DEBUG chatter."""
        if not super().filter(record):
            return False
        if record.levelno >= logging.INFO:
            return True
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is not None:
            return event.event_type_value in FILE_EVENTS
        return get_logger().isEnabledFor(record.levelno)

    def emit(self, record: logging.LogRecord) -> None:
        """Append the record to the application log and its job's log."""
        try:
            meta = getattr(record, "dagster_meta", None) or {}  # set by Dagster's handler
            job = str(meta.get("job_name") or "")
            run_id = str(meta.get("run_id") or "")[:8]
            step = str(meta.get("step_key") or "")
            message = meta.get("orig_message") or record.getMessage()
            event = meta.get("dagster_event")
            if event is not None:
                message = f"{event.event_type_value} - {message}"
            stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
            where = " ".join(part for part in (job, run_id, step) if part)
            line = mask_secrets(f"{stamp} {record.levelname:<7} [{where}] {message}") + "\n"
            targets = [self.directory / "system" / "application.log"]
            if self.per_job and job:
                targets.append(self.directory / "jobs" / f"{_safe_name(job)}.log")
            for path in targets:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as stream:
                    stream.write(line)
        except Exception:
            self.handleError(record)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "job"
