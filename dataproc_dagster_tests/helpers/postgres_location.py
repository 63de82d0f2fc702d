"""The project's code location plus a schedule that ticks every minute, for the daemon tests.

``dagster-daemon run -m dataproc_dagster_tests.helpers.postgres_location`` serves the project's
jobs unchanged; the extra schedule (running from the start) lets a test see a tick within a
minute instead of waiting for the penguins pipeline's daily one.
"""

from __future__ import annotations

from dagster import DefaultScheduleStatus, Definitions, ScheduleDefinition

from dataproc_dagster import definitions

MINUTELY = "penguins_every_minute"

defs = Definitions.merge(
    definitions.defs,
    Definitions(
        schedules=[
            ScheduleDefinition(
                name=MINUTELY,
                cron_schedule="* * * * *",
                job_name="penguins",
                default_status=DefaultScheduleStatus.RUNNING,
            )
        ]
    ),
)
