"""A YAML pipeline the way a user makes one, with the real `dg` command line: scaffolded into a
temporary copy of the project, filled in against the tests' HTTP API, checked, launched; and a
broken ``defs.yaml`` named by `dg check yaml` and refused by `dg launch` before any run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.helpers.cli import REPO, cli_env, dg_executable
from dataproc_dagster_tests.helpers.components import COMPONENT_TYPE, yaml_line
from dataproc_dagster_tests.servers.http_api import ApiState, RunningApi, serve_api

pytestmark = pytest.mark.slow

NAME = "api_items"


@dataclass
class Project:
    """A copy of the project (sharing the repository's .venv), its instance and data."""

    root: Path
    data: Path
    home: Path
    api: RunningApi

    @property
    def defs_yaml(self) -> Path:
        return self.root / "dataproc_dagster" / "component_defs" / NAME / "defs.yaml"

    def dg(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """`dg ARGUMENTS` in the copy, as `./run.sh dg` runs it.

        PYTHONPATH puts the copy's package before the repository's (installed in the shared
        .venv), also in the `dg` process itself, which loads the definitions in-process for
        `dg check defs`."""
        env = {
            **cli_env(self.data, self.home),
            "VIRTUAL_ENV": str(REPO / ".venv"),
            "PYTHONPATH": str(self.root),
        }
        env.pop("CLICKHOUSE_URL", None)
        return subprocess.run(
            [dg_executable(), *arguments],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def runs(self) -> list[tuple[str, DagsterRunStatus]]:
        with DagsterInstance.from_config(str(self.home)) as instance:
            return [(r.job_name, r.status) for r in instance.get_runs()]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The copy, with `dg scaffold defs` run in it once for the module's tests."""
    root = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "dataproc_dagster", root / "dataproc_dagster", ignore=ignore)
    shutil.copytree(REPO / "migrations", root / "migrations")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    os.symlink(REPO / ".venv", root / ".venv")
    with serve_api(ApiState()) as api:
        made = Project(root, root / "data", root / "home", api)
        done = made.dg("scaffold", "defs", COMPONENT_TYPE, NAME, "--source", "http")
        assert done.returncode == 0, done.stdout + done.stderr
        yield made


def test_scaffold_writes_a_commented_defs_yaml_of_a_listed_component(project: Project) -> None:
    text = project.defs_yaml.read_text()

    assert text.startswith("# Pipeline `api_items`")
    assert f"type: {COMPONENT_TYPE}" in text
    assert "      url: https://api.example.com/v1/api_items" in text
    assert "    table: api_items" in text
    assert '#   secret: "{{ env.API_TOKEN }}"' in text  # options shown, commented
    listed = project.dg("list", "components", "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    [component] = [c for c in json.loads(listed.stdout)["items"] if c["key"] == COMPONENT_TYPE]
    assert "create_etl_pipeline" in component["summary"]


def test_filled_in_it_passes_dg_check_and_dg_launch_lands_the_rows(project: Project) -> None:
    text = project.defs_yaml.read_text()
    text = text.replace("https://api.example.com/v1/api_items", f"{project.api.url}/single")
    text = text.replace("    table: api_items\n", "    table: api_items_raw\n")
    project.defs_yaml.write_text(text)

    checked_yaml = project.dg("check", "yaml")
    assert checked_yaml.returncode == 0, checked_yaml.stdout + checked_yaml.stderr
    checked_defs = project.dg("check", "defs")
    assert checked_defs.returncode == 0, checked_defs.stdout + checked_defs.stderr[-3000:]
    assert "All definitions loaded successfully" in checked_defs.stdout + checked_defs.stderr
    launched = project.dg("launch", "--job", NAME)

    assert launched.returncode == 0, launched.stderr[-3000:]
    engine = ClickHouseResource(url=f"chdb://{project.data / 'clickhouse'}")
    assert engine.query_rows("SELECT count(), max(id) FROM api_items_raw") == [(250, 250)]
    assert engine.query_rows("SELECT owner_address_city FROM api_items_raw WHERE id = 2") == [
        ("city 1",)
    ]
    assert project.runs() == [(NAME, DagsterRunStatus.SUCCESS)]


def test_a_broken_defs_yaml_is_named_and_no_run_starts(project: Project) -> None:
    broken = project.root / "dataproc_dagster" / "component_defs" / "broken" / "defs.yaml"
    broken.parent.mkdir()
    text = project.defs_yaml.read_text().replace("api_items", "broken_items")
    text = text.replace("mode: append", "mode: apend").replace("    table:", "    tabel:")
    # A misspelt grain in a partitions block.
    text = text.replace(
        "\n# Environment variables",
        '  partitions:\n    dayly: {start: "2024-01-01"}\n\n# Environment variables',
        1,
    )
    broken.write_text(text)
    runs_before = project.runs()
    try:
        # The folder is named: dg 1.13's `check yaml` keeps one defs.yaml per component type
        # when it checks the whole definitions folder (docs/extending.md).
        checked_yaml = project.dg("check", "yaml", str(broken.parent))
        checked_defs = project.dg("check", "defs")
        launched = project.dg("launch", "--job", NAME)
    finally:
        shutil.rmtree(broken.parent)

    where = "component_defs/broken/defs.yaml"
    mode_at, typo_at = yaml_line(text, "mode: apend"), yaml_line(text, "tabel:")
    report = checked_yaml.stdout + checked_yaml.stderr
    assert checked_yaml.returncode != 0
    assert f"{where}:{mode_at} - {COMPONENT_TYPE} attributes.loader.mode" in report
    assert "'apend' is not one of ['append', 'replace', 'replace_partitions', 'upsert']" in report
    assert f"{where}:{typo_at} - {COMPONENT_TYPE} attributes.loader.tabel" in report
    assert "attributes.loader 'table' is a required property" in report
    assert f"{where}:{yaml_line(text, 'dayly:')} - {COMPONENT_TYPE} attributes.partitions" in report
    # Loading the code location names them too, the field and the line...
    for done in (checked_defs, launched):
        report = done.stdout + done.stderr
        assert done.returncode != 0
        assert f"attributes.loader.mode at {project.root}/dataproc_dagster/{where}:{mode_at}" in (
            report
        )
        assert f"attributes.loader.tabel at {project.root}/dataproc_dagster/{where}:{typo_at}" in (
            report
        )
        assert "attributes.loader.table at" in report
    # ...and nothing runs while it does not load, not even the valid pipeline's job.
    assert project.runs() == runs_before
