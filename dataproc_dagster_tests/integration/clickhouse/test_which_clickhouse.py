"""Every run says which ClickHouse it used: an early log line, the run tag
``dataproc/clickhouse`` and the load's materialization metadata; an empty ``CLICKHOUSE_URL`` is
named, and ``./run.sh`` refuses it (the README's server idiom with no server running)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from dataproc_dagster.clickhouse.resource import RUN_TAG, ClickHouseResource
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.pipelines.penguins import pipeline as penguins
from dataproc_dagster_tests.helpers.cli import REPO


def _run(clickhouse: ClickHouseResource) -> tuple[list[str], dict[str, str], dict[str, object]]:
    with DagsterInstance.ephemeral() as instance:
        result = penguins.execute_in_process(
            resources={"clickhouse": clickhouse}, instance=instance
        )
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        records = instance.all_logs(result.run_id)
        messages = [r.user_message for r in records if r.user_message]
        materialized = [
            r.dagster_event.step_materialization_data.materialization
            for r in records
            if r.dagster_event is not None
            and r.dagster_event.event_type == DagsterEventType.ASSET_MATERIALIZATION
        ]
    table = next(m for m in materialized if m.asset_key.path[-1] == "penguins")
    metadata = {k: v.value for k, v in table.metadata.items()}
    return messages, dict(run.tags), metadata


def test_a_run_names_its_clickhouse(clickhouse: ClickHouseResource) -> None:
    messages, tags, metadata = _run(clickhouse)
    where = clickhouse.describe()
    assert tags[RUN_TAG] == where
    assert metadata[RUN_TAG] == where
    said = [i for i, m in enumerate(messages) if m.startswith(f"ClickHouse: {where}")]
    assert said and said[0] < 5, messages[:8]  # before the steps' own lines
    assert "penguins__etl" not in " ".join(messages[: said[0]])


def test_an_empty_clickhouse_url_is_named(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    if backend != "embedded":
        pytest.skip("about the default embedded engine")
    monkeypatch.setenv("CLICKHOUSE_URL", "")
    get_settings.cache_clear()
    messages, _tags, _metadata = _run(ClickHouseResource.from_settings(get_settings()))
    assert any("(CLICKHOUSE_URL is set but empty: the default)" in m for m in messages)


def test_run_sh_refuses_an_empty_clickhouse_url(backend: str) -> None:
    if backend != "embedded":
        pytest.skip("no ClickHouse involved")
    env = dict(os.environ, CLICKHOUSE_URL="")
    done = subprocess.run(
        [str(REPO / "run.sh"), "job", "penguins"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "CLICKHOUSE_URL is set but empty" in done.stderr
    assert "./run.sh clickhouse start" in done.stderr
