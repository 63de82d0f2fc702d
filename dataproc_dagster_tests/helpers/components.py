"""YAML pipelines in tests: a definitions folder in a temporary package, loaded as the code
location loads its own, and a snapshot of what a ``Definitions`` object holds."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetsDefinition, AssetSpec, Definitions

from dataproc_dagster.components.discovery import load_component_defs
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.pipeline.jobs import Pipeline
from dataproc_dagster.resources import build_resources

REPO = Path(__file__).resolve().parents[2]
COMPONENT_TYPE = "dataproc_dagster.components.EtlPipelineComponent"
# Metadata Dagster adds to every asset of a YAML component: where its defs.yaml is, and the
# component instance (its attributes as written, so a secret is still '{{ env.NAME }}').
COMPONENT_METADATA = ("dagster/code_references", "dagster/component_origin")
_packages = itertools.count()


def load_yaml_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folders: dict[str, str]
) -> tuple[Definitions, list[Pipeline]]:
    """Write ``{folder: defs.yaml text}`` into a new definitions package and load it with
    :func:`~dataproc_dagster.components.discovery.load_component_defs`."""
    name = f"yaml_defs_{next(_packages)}_{tmp_path.name}".replace("-", "_")
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for folder, text in folders.items():
        (package / folder).mkdir(parents=True)
        (package / folder / "defs.yaml").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return load_component_defs(name)


def yaml_line(text: str, pattern: str) -> int:
    """The 1-based number of the first line of ``text`` matching ``pattern``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if re.search(pattern, line):
            return number
    raise AssertionError(f"no line matches {pattern!r}")


def documented_yaml_examples() -> list[tuple[str, str]]:
    """``(page, block)`` for every ``EtlPipelineComponent`` YAML block of the README and docs."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    found = []
    for page in pages:
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), flags=re.DOTALL):
            if COMPONENT_TYPE in block:
                found.append((page.name, block))
    return found


def definitions_snapshot(defs: Definitions) -> dict[str, Any]:
    """Assets (keys, deps, group, kinds, owners, tags, description, metadata, checks),
    jobs (their assets and checks, tags, executor, steps) and schedules of ``defs``, in a
    JSON-friendly shape; what Dagster adds to a component's assets (``COMPONENT_METADATA``) is
    left out."""
    if not defs.resources:  # a pipeline's own definitions: the code location's resources
        defs = Definitions.merge(defs, Definitions(resources=build_resources(get_settings())))
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        metadata = {k: str(v) for k, v in node.metadata.items() if k not in COMPONENT_METADATA}
        checks = {}
        for check_key in sorted(node.check_keys, key=lambda c: c.name):
            spec = graph.get_check_spec(check_key)
            checks[check_key.name] = {"blocking": spec.blocking, "description": spec.description}
        assets[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "tags": dict(node.tags),
            "description": node.description,
            "metadata": metadata,
            "materializable": node.is_materializable,
            "checks": checks,
        }
    jobs = {}
    for name in sorted(repo.job_names):
        if name.startswith("__"):
            continue
        job = repo.get_job(name)
        layer = job.asset_layer
        jobs[name] = {
            "assets": sorted(k.to_user_string() for k in layer.selected_asset_keys),
            "checks": sorted(
                f"{c.asset_key.to_user_string()}:{c.name}"
                for c in layer.asset_graph.asset_check_keys
            ),
            "description": job.description,
            "tags": dict(job.tags),
            "executor": job.executor_def.name,
            "steps": sorted(node.name for node in job.graph.iterate_node_defs()),
        }
    schedules = {
        s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name}
        for s in repo.schedule_defs  # resolved: a partitioned job's schedule too
    }
    return {"assets": assets, "jobs": jobs, "schedules": schedules}


def source_specs(defs: Definitions) -> list[AssetSpec]:
    """The external assets of ``defs`` (where pipelines read)."""
    return [a for a in defs.assets or [] if isinstance(a, AssetSpec)]


def materialized(defs: Definitions) -> list[str]:
    """Keys of the assets ``defs`` materializes."""
    return sorted(
        k.to_user_string()
        for a in defs.assets or []
        if isinstance(a, AssetsDefinition)
        for k in a.keys
    )
