"""Commands as a user runs them: shell environment against ``.env``, masking of the working
directory, the console's level, known warnings and an invalid run config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dataproc_dagster_tests.helpers.cli import REPO, dagster_executable
from dataproc_dagster_tests.servers.http_api import ApiState, RunningApi, serve_api

HOLD = """
import sys, time
from dataproc_dagster.clickhouse.embedded_lock import embedded_directory_lock
with embedded_directory_lock(sys.argv[1], timeout=5, holder={"run": "other-run", "step": "load"}):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def job_config(api: RunningApi) -> dict[str, object]:
    """``http_to_clickhouse`` reading 250 records in pages of 100 into ``api_items``."""
    return {
        "ops": {
            "http_to_clickhouse__extract": {
                "config": {
                    "url": api.url + "/pages",
                    "paginator": {"style": "page_number", "total_pages_path": "meta.total_pages"},
                    "records_path": "data.items",
                }
            },
            "http_to_clickhouse__load": {"config": {"table": "api_items"}},
        }
    }


def shell_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment a shell started in ``workdir`` would give a command (PWD, OLDPWD)."""
    env = dict(os.environ)
    for name in ("LOG_LEVEL", "CLICKHOUSE_LOCK_TIMEOUT", "CLICKHOUSE_URL", "PYTHONWARNINGS"):
        env.pop(name, None)
    env.update(
        PWD=str(workdir),
        OLDPWD=str(REPO),
        DAGSTER_HOME=str(workdir / ".dagster_home"),
        DATAPROC_DATA_DIR=str(workdir / ".dataproc"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        **extra,
    )
    return env


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A project folder whose .env says INFO and a 600 s lock timeout."""
    (tmp_path / ".env").write_text("LOG_LEVEL=INFO\nCLICKHOUSE_LOCK_TIMEOUT=600\n")
    (tmp_path / ".dagster_home").mkdir()
    # The shipped instance settings: they route the framework's loggers into the run's log.
    shutil.copy(REPO / "deploy" / "dagster.yaml", tmp_path / ".dagster_home" / "dagster.yaml")
    return tmp_path


@pytest.fixture
def api() -> Iterator[RunningApi]:
    with serve_api(ApiState()) as running:
        yield running


def test_shell_environment_beats_env_file_and_pwd_is_not_masked(
    workdir: Path, api: RunningApi
) -> None:
    """`dagster job execute` with LOG_LEVEL=DEBUG and CLICKHOUSE_LOCK_TIMEOUT=5 from the shell."""
    config = workdir / "job.yaml"
    config.write_text(yaml.safe_dump(job_config(api)))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(workdir / ".dataproc" / "clickhouse"), "40"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        command = [dagster_executable(), "job", "execute", "-m", "dataproc_dagster"]
        done = subprocess.run(
            [*command, "-j", "http_to_clickhouse", "-c", str(config)],
            cwd=workdir,
            env=shell_env(workdir, LOG_LEVEL="DEBUG", CLICKHOUSE_LOCK_TIMEOUT="5"),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        holder.kill()
        holder.wait()
    output = done.stdout + done.stderr
    # LOG_LEVEL=DEBUG from the shell: the framework's request lines are there.
    assert f"HTTP GET {api.url}/pages" in output, output[-3000:]
    # CLICKHOUSE_LOCK_TIMEOUT=5 from the shell: the load waited 5 s, not 600.
    assert "(waiting up to 5 s)" in output and "held by pid" in output
    assert "stayed locked for 5 s" in output
    assert done.returncode != 0
    # The working directory is no secret: paths under it stay readable.
    assert f"Writing file at: {workdir}/.dagster_home/storage/" in output
    assert "***/" not in output


def run_sh_job(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`./run.sh job ARGS` with the instance and data under ``workdir``."""
    return subprocess.run(
        [str(REPO / "run.sh"), "job", *args],
        cwd=workdir,
        env=shell_env(workdir),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_run_sh_job_prints_info_lines_without_known_warnings(
    workdir: Path, api: RunningApi
) -> None:
    config = workdir / "job.yaml"
    config.write_text(yaml.safe_dump(job_config(api)))
    done = run_sh_job(workdir, "http_to_clickhouse", str(config))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "http_to_clickhouse__load: 250 rows" in output
    assert " - DEBUG - " not in output and "STEP_START" not in output
    for warning in ("SupersessionWarning", "BetaWarning", "Warning:"):
        assert warning not in output, output[:3000]


def test_invalid_run_config_prints_the_error_first(workdir: Path, api: RunningApi) -> None:
    config = job_config(api)
    config["ops"]["http_to_clickhouse__load"] = {"config": {"tabel": "x", "mode": "upsrt"}}  # type: ignore[index]
    path = workdir / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    done = run_sh_job(workdir, "http_to_clickhouse", str(path))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[0] == "error: invalid run config: Error in config for job http_to_clickhouse"
    assert 'unexpected config entry "tabel"' in done.stderr and "upsrt" in done.stderr
    assert "Traceback" not in done.stderr and len(lines) < 10
