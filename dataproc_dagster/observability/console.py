"""The console logger of the code location's jobs: each failure once, with its fix.

Dagster's console logger prints a failed step's error with two stack traces, and the run's
failure with the same error and traces again. :data:`console_logger` (the ``console`` logger of
every job, which ``./run.sh job`` and ``./run.sh dg launch`` configure) prints the failed step's
message once and the run's failure as one line; with ``log_level: DEBUG`` it prints everything,
as Dagster's does.
"""

from __future__ import annotations

import logging

from dagster import DagsterEventType, Field, InitLoggerContext, colored_console_logger, logger

# The attribute Dagster puts the record's event metadata under (``dagster_meta``).
RECORD_METADATA = "dagster_meta"


def shorten(record: logging.LogRecord) -> bool:
    """Cut a failure record to its message (filter of the console handler; keeps every record)."""
    meta = getattr(record, RECORD_METADATA, None) or {}
    event = meta.get("dagster_event")
    if event is None or not isinstance(record.msg, str) or "\n\n" not in record.msg:
        return True
    header = record.msg.split("\n\n", 1)[0]
    if event.event_type == DagsterEventType.RUN_FAILURE:
        record.msg = header
    elif event.event_type == DagsterEventType.STEP_FAILURE:
        error = getattr(event.event_specific_data, "error", None)
        message = (error.message if error is not None else "").strip()
        _, colon, rest = message.partition("Failure: ")
        record.msg = f"{header}\n  {rest if colon else message}"
    record.args = ()
    return True


@logger(
    config_schema={
        "log_level": Field(str, is_required=False, default_value="INFO"),
        "name": Field(str, is_required=False, default_value="dagster"),
    },
    description="Console logger: each failure once with its fix (everything at DEBUG).",
)
def console_logger(init_context: InitLoggerContext) -> logging.Logger:
    """Dagster's colored console logger, with failures shortened below DEBUG."""
    log = colored_console_logger.logger_fn(init_context)
    if log.level > logging.DEBUG:
        for handler in log.handlers:
            if shorten not in handler.filters:
                handler.addFilter(shorten)
    return log
