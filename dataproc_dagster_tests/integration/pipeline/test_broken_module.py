"""One pipeline module that fails to import: the other pipelines load and run, the failure is
logged and fails the integrity check ``pipeline_modules_import``, and ``dagster definitions
validate`` and ``dg check defs`` still fail for it (CI catches it).

The modules are added to ``dataproc_dagster.pipelines`` for the test through ``sitecustomize``
on ``PYTHONPATH``, so every process Dagster starts finds them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataproc_dagster_tests.helpers.cli import REPO, dagster_executable, dg_executable

pytestmark = [pytest.mark.timeout(600)]

SITECUSTOMIZE = """
import os
import dataproc_dagster.pipelines as _pipelines
_pipelines.__path__.append(os.environ["TEST_EXTRA_PIPELINES"])
"""
GOOD = """
import pandas as pd
from dataproc_dagster import create_clickhouse_loader, create_etl_pipeline, create_extractor

pipeline = create_etl_pipeline(
    name="still_running",
    extractor=create_extractor(lambda: pd.DataFrame({"id": [1, 2, 3]})),
    loader=create_clickhouse_loader("still_running"),
)
"""
BROKEN = "from dataproc_dagster import no_such_name\n"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / ".dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "aa_broken_orders.py").write_text(BROKEN)
    (extra / "still_running.py").write_text(GOOD)
    variables = {
        k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "DAGSTER_"))
    }
    variables.update(
        DAGSTER_HOME=str(home),
        DATAPROC_DATA_DIR=str(tmp_path / ".dataproc"),
        PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(REPO)]),
        TEST_EXTRA_PIPELINES=str(extra),
    )
    return variables


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=500)
    return done.returncode, done.stdout + done.stderr


def test_other_pipelines_load_and_run(env: dict[str, str], tmp_path: Path) -> None:
    dagster = dagster_executable()
    code, output = _run(
        [dagster, "job", "execute", "-m", "dataproc_dagster", "-j", "still_running"], env, tmp_path
    )
    assert code == 0, output[-3000:]
    assert "dataproc_dagster.pipelines.aa_broken_orders failed to import: ImportError" in output
    assert "pipeline_modules_import fails until it imports" in output

    code, output = _run(
        [sys.executable, "-m", "dataproc_dagster.cli.integrity", "--json"], env, tmp_path
    )
    assert code == 1
    start = output.index("[")
    results = {r["name"]: r for r in json.loads(output[start : output.rindex("]") + 1])}
    modules = results["pipeline_modules_import"]
    assert modules["status"] == "failed"
    assert "aa_broken_orders" in modules["summary"]
    assert "pipeline_tables_still_running" in results  # the good pipeline is checked


def test_validation_still_fails(env: dict[str, str], tmp_path: Path) -> None:
    code, output = _run(
        [dagster_executable(), "definitions", "validate", "-m", "dataproc_dagster"], env, tmp_path
    )
    assert code != 0
    assert "dataproc_dagster.pipelines.aa_broken_orders failed to import" in output

    code, output = _run([dg_executable(), "check", "defs"], env, REPO)
    assert code != 0
    assert "aa_broken_orders" in output
