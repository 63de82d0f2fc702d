"""The chunk store on S3-compatible storage (a real ``moto_server``), next to the local folder.

moto's server speaks the S3 API over HTTP, as AWS S3, MinIO and GCS (interoperability mode) do;
the store is reached with boto3 exactly as in production, only the endpoint differs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, execute_job, reconstructable

from dataproc_dagster.cli.resume import resume
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core import chunk_store
from dataproc_dagster.core.chunks import ChunkSet, ChunkWriter
from dataproc_dagster.core.errors import SourceError
from dataproc_dagster.core.redaction import mask_secrets
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster_tests.helpers import faulty_job
from dataproc_dagster_tests.integration.deploy.conftest import S3Server

MODULE = "dataproc_dagster_tests.helpers.faulty_job"


def write_chunks(run_id: str = "run-1", step: str = "extract") -> tuple[pd.DataFrame, ChunkSet]:
    frame = pd.DataFrame({"id": range(2500), "name": [f"n{i}" for i in range(2500)]})
    folder = get_settings().runs_dir / run_id / step
    with ChunkWriter(folder, f"{run_id}/{step}", chunk_rows=1000) as writer:
        writer.write(frame)
        chunks = writer.close()
    return frame, chunks.published()


def test_chunks_move_to_the_store_and_come_back_on_another_machine(
    data_dir: Path, s3_store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    frame, chunks = write_chunks()
    assert chunks.store_url == f"{s3_store}/run-1/extract"
    assert not (data_dir / "runs" / "run-1" / "extract").exists()  # moved, not copied
    assert sorted(chunk_store.stored_files()) == [
        f"chunks/run-1/extract/part-0000{i}.arrow" for i in range(3)
    ]
    # Another worker: its own data folder, nothing of the run on its disk.
    monkeypatch.setenv("DATAPROC_DATA_DIR", str(tmp_path / "worker-2"))
    get_settings.cache_clear()
    paths = chunks.paths()
    assert paths[0].parent == tmp_path / "worker-2" / "runs" / "run-1" / "extract"
    pd.testing.assert_frame_equal(chunks.to_pandas(), frame, check_dtype=False)
    chunk_store.drop_local_copy(chunks.store_url)
    assert not paths[0].exists()
    assert chunks.rows == 2500


def test_a_chunk_gone_from_the_store_is_named(data_dir: Path, s3_store: str) -> None:
    _frame, chunks = write_chunks("run-2")
    assert chunk_store.remove_runs(["run-2"]) == ["run-2"]
    assert chunk_store.stored_files() == []
    with pytest.raises(SourceError, match=r"part-00000\.arrow is gone from the chunk store"):
        chunks.paths()


def test_old_runs_are_pruned_from_the_store(data_dir: Path, s3_store: str) -> None:
    write_chunks("run-3")
    assert chunk_store.prune_runs(max_age_days=7) == []
    assert chunk_store.prune_runs(max_age_days=0) == ["run-3"]
    assert chunk_store.stored_files() == []


def test_the_store_secret_is_masked(data_dir: Path, s3_store: str, s3_server: S3Server) -> None:
    chunk_store.s3_client()
    text = f"failed with key {s3_server.secret} on {s3_store}"
    assert s3_server.secret not in mask_secrets(text)
    assert s3_server.secret not in repr(get_settings())


def test_a_store_url_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataproc_dagster.core.errors import ConfigError
    from dataproc_dagster.core.settings import load_settings

    monkeypatch.setenv("CHUNK_STORE", "gs://bucket")
    with pytest.raises(ConfigError, match=r"CHUNK_STORE: .*s3://bucket\[/prefix\]"):
        load_settings()
    monkeypatch.setenv("CHUNK_STORE", "s3://bucket/prefix/")
    assert load_settings().chunk_store == "s3://bucket/prefix"


@pytest.mark.slow
@pytest.mark.parametrize("store", ["local", "s3"])
def test_reexecution_from_failure_and_cleanup_on_both_stores(
    store: str,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if store == "s3":
        request.getfixturevalue("s3_store")
    fault = tmp_path / "fault"
    fault.touch()
    monkeypatch.setenv("DATAPROC_TEST_FAULT_FILE", str(fault))
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        with execute_job(reconstructable(faulty_job.faulty_job), instance=instance) as first:
            assert not first.success
        if store == "s3":
            # The failed run's chunks wait in the store for the re-execution...
            assert any(first.run_id in key for key in chunk_store.stored_files())
            # ...which may run on a machine that never saw them.
            shutil.rmtree(data_dir / "runs")
        run_id, success = resume(instance, job="faulty_append", module=MODULE)
    assert success
    total = faulty_job.CHUNKS * faulty_job.ROWS_PER_CHUNK
    clickhouse = ClickHouseResource(url=f"chdb://{data_dir / 'clickhouse'}")
    assert clickhouse.query_rows("SELECT count(), uniqExact(id) FROM faulty_events") == [
        (total, total)
    ]
    # Cleanup after success: nothing of either run is left, locally or in the store.
    assert not any((data_dir / "runs" / r).exists() for r in (first.run_id, run_id))
    assert chunk_store.stored_files() == []
