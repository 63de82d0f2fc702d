"""A pipeline module's own settings: a variable on the command line wins over ``.env``.

``ORDERS_API_URL=... dagster job execute -m dataproc_dagster -j ...`` in a folder whose ``.env``
names another (unreachable) URL, with pipeline modules added to ``dataproc_dagster.pipelines``
for the test (through ``sitecustomize`` on ``PYTHONPATH``, so every process Dagster starts
finds them): one reads its URL with :func:`dataproc_dagster.setting`, one with ``os.environ`` at
import. Both runs read the command line's URL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataproc_dagster_tests.helpers.cli import REPO, dagster_executable
from dataproc_dagster_tests.servers.http_api import ApiState, RunningApi, serve_api

pytestmark = [pytest.mark.timeout(600)]

SITECUSTOMIZE = """
import os
import dataproc_dagster.pipelines as _pipelines
_pipelines.__path__.append(os.environ["TEST_EXTRA_PIPELINES"])
"""
MODULE = """
import os
from dataproc_dagster import (
    create_clickhouse_loader, create_etl_pipeline, create_http_extractor, page_number, setting,
)

pipeline = create_etl_pipeline(
    name="{name}",
    extractor=create_http_extractor(
        {url}, paginator=page_number(total_pages_path="meta.total_pages"),
        records_path="data.items",
    ),
    loader=create_clickhouse_loader("{name}"),
)
"""
# Imported first (modules load in name order): nothing has touched the environment before.
BY_HAND = ("a_orders_raw", "api_orders_raw", 'os.environ.get("ORDERS_API_URL", "http://x:9")')
DOCUMENTED = ("b_orders", "api_orders", 'setting("ORDERS_API_URL", "http://127.0.0.1:9/x")')


@pytest.fixture
def api() -> Iterator[RunningApi]:
    with serve_api(ApiState()) as running:
        yield running


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A project folder whose ``.env`` points ``ORDERS_API_URL`` at nothing."""
    (tmp_path / ".env").write_text("ORDERS_API_URL=http://127.0.0.1:9/from-dotenv\n")
    home = tmp_path / ".dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (tmp_path / "extra").mkdir()
    for module, name, url in (BY_HAND, DOCUMENTED):
        (tmp_path / "extra" / f"{module}.py").write_text(MODULE.format(name=name, url=url))
    return tmp_path


@pytest.mark.parametrize("job", ["api_orders", "api_orders_raw"])
def test_command_line_beats_env_file_in_a_pipeline_module(
    workdir: Path, api: RunningApi, job: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "DAGSTER_"))}
    env.update(
        ORDERS_API_URL=api.url + "/pages",
        DAGSTER_HOME=str(workdir / ".dagster_home"),
        DATAPROC_DATA_DIR=str(workdir / ".dataproc"),
        PYTHONPATH=os.pathsep.join([str(workdir / "site"), str(REPO)]),
        TEST_EXTRA_PIPELINES=str(workdir / "extra"),
    )
    done = subprocess.run(
        [dagster_executable(), "job", "execute", "-m", "dataproc_dagster", "-j", job],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "250 record(s) received" in output
    assert "from-dotenv" not in output
