"""The project's code location plus the penguins pipeline's assets as a job on Celery.

``penguins_celery`` materializes the same assets as the ``penguins`` job, with
``dagster_celery.celery_executor``: each step is a Celery task that any worker may take. This
is the documented way to move a pipeline onto workers (docs/operations.md, "Steps on several
workers"); the project's own jobs keep their executors.
"""

from __future__ import annotations

from dagster import Definitions, define_asset_job
from dagster_celery import celery_executor

from dataproc_dagster import definitions
from dataproc_dagster.pipelines import penguins

JOB = "penguins_celery"

penguins_celery = define_asset_job(
    JOB,
    selection=penguins.pipeline.job.selection,  # type: ignore[union-attr]
    executor_def=celery_executor,
    tags={"dataproc/pipeline": "penguins"},
)

defs = Definitions.merge(definitions.defs, Definitions(jobs=[penguins_celery]))
