"""``python -m dataproc_dagster.cli.resume``: re-execution from failure from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance

from dataproc_dagster.cli.resume import ResumeError, main, resume
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.helpers import faulty_job

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
