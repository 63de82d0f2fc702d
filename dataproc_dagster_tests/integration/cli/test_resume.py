"""``python -m dataproc_dagster.cli.resume``: re-execution from failure from the command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance

from dataproc_dagster.cli.resume import ResumeError, main, resume
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.helpers import faulty_job
from dataproc_dagster_tests.helpers.cli import REPO, job_execute_command
from dataproc_dagster_tests.servers.http_api import ApiState, serve_api

MODULE = "dataproc_dagster_tests.helpers.faulty_job"


def test_resume_reexecutes_the_latest_failed_run_of_a_job(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clickhouse = ClickHouseResource(url=f"chdb://{data_dir / 'clickhouse'}")
    with pytest.raises(ResumeError, match="no run in this instance yet"):
        resume(DagsterInstance.ephemeral())
    with faulty_job.instance_with_a_failed_run(tmp_path, monkeypatch) as (instance, first_id):
        run_id, success = resume(instance, job="faulty_append", module=MODULE)

        assert success and run_id != first_id
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.parent_run_id == first_id
        assert run.tags["dataproc/resumed_from"] == first_id
        with pytest.raises(ResumeError, match="is SUCCESS: nothing to resume"):
            resume(instance, job="faulty_append", module=MODULE)
    total = faulty_job.CHUNKS * faulty_job.ROWS_PER_CHUNK
    assert clickhouse.query_rows("SELECT count(), uniqExact(id) FROM faulty_events") == [
        (total, total)
    ]


def test_cli_says_why_it_cannot_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert main(["no-such-run"]) == 1
    assert (
        "resume: no run no-such-run in the Dagster instance (DAGSTER_HOME)"
        in capsys.readouterr().err
    )


def test_resume_reads_the_env_file(tmp_path: Path) -> None:
    """A run failed for a missing token; the token is added to .env; `resume` reads it there."""
    home = tmp_path / ".dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), DATAPROC_DATA_DIR=str(tmp_path / ".dataproc"))
    env.pop("RESUME_API_TOKEN", None)
    with serve_api(ApiState(auth=("bearer", "resume-token-77"))) as api:
        config = {
            "ops": {
                "http_to_clickhouse__extract": {
                    "config": {
                        "url": api.url + "/pages",
                        "auth": {"kind": "bearer", "secret_env": "RESUME_API_TOKEN"},
                        "paginator": {
                            "style": "page_number",
                            "total_pages_path": "meta.total_pages",
                        },
                        "records_path": "data.items",
                    }
                },
                "http_to_clickhouse__load": {"config": {"table": "resumed_items"}},
            }
        }
        (tmp_path / "job.yaml").write_text(yaml.safe_dump(config))
        first = subprocess.run(
            [*job_execute_command("http_to_clickhouse", tmp_path / "job.yaml")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert first.returncode != 0 and "RESUME_API_TOKEN" in first.stdout + first.stderr
        (tmp_path / ".env").write_text("RESUME_API_TOKEN=resume-token-77\n")
        done = subprocess.run(
            [sys.executable, "-m", "dataproc_dagster.cli.resume", "--job", "http_to_clickhouse"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert ": SUCCESS" in done.stdout
    # INFO lines and the result: no DEBUG events, no warnings nobody can act on.
    assert "Warning" not in output and " - DEBUG - " not in output, output[-3000:]
    assert "http_to_clickhouse__load: 250 rows" in output
    clickhouse = ClickHouseResource(url=f"chdb://{tmp_path / '.dataproc' / 'clickhouse'}")
    assert clickhouse.query_rows("SELECT count() FROM resumed_items") == [(250,)]
