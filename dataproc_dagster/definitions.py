"""The code location's one ``Definitions`` object: pipelines, generic jobs, resources.

Loading it opens no connection: resources connect inside steps only, so a running webserver
or code server never holds the embedded ClickHouse directory.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from dagster import Definitions

from dataproc_dagster.environment import restore_process_environment
from dataproc_dagster.log_setup import configure_logging
from dataproc_dagster.registry import discover_pipelines
from dataproc_dagster.resources import build_resources
from dataproc_dagster.settings import get_settings

JOBS_PACKAGE = "dataproc_dagster.jobs"


def _collect_job_modules() -> dict[str, list[Any]]:
    collected: dict[str, list[Any]] = {
        "JOBS": [],
        "SCHEDULES": [],
        "ASSETS": [],
        "ASSET_CHECKS": [],
        "SENSORS": [],
    }
    package = importlib.import_module(JOBS_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{JOBS_PACKAGE}.{info.name}")
        for key, items in collected.items():
            items.extend(getattr(module, key, []))
    return collected


def build_definitions() -> Definitions:
    """Assemble every pipeline, job, schedule, asset and resource of the code location."""
    # Dagster's CLI copied .env over the process environment; the environment wins.
    restore_process_environment()
    settings = get_settings()
    resources = build_resources(settings)
    # LOG_LEVEL and secret masking, in every process that loads the code location.
    configure_logging(settings, resources)
    pipelines = discover_pipelines()
    extra = _collect_job_modules()
    return Definitions(
        jobs=[p.job for p in pipelines] + extra["JOBS"],
        schedules=[p.schedule for p in pipelines if p.schedule is not None] + extra["SCHEDULES"],
        assets=extra["ASSETS"],
        asset_checks=extra["ASSET_CHECKS"],
        sensors=extra["SENSORS"],
        resources=resources,
    )


defs = build_definitions()
