"""The sample pipeline runs on the embedded ClickHouse, in-process and through the CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.pipelines.penguins import PENGUINS_CSV, clean_penguins
from dataproc_dagster.pipelines.penguins import pipeline as penguins
from dataproc_dagster_tests.helpers.cli import REPO, cli_env, job_execute_command, run_dagster


def _expected() -> pd.DataFrame:
    return clean_penguins(pd.read_csv(str(PENGUINS_CSV)))


def test_penguins_in_process_lands_every_cleaned_row(clickhouse: ClickHouseResource) -> None:
    result = penguins.execute_in_process(resources={"clickhouse": clickhouse})

    assert result.success
    expected = _expected()
    assert len(expected) == 342  # 344 birds, 2 with no measurement at all
    counts = dict(clickhouse.query_rows("SELECT species, count() FROM penguins GROUP BY species"))
    assert counts == expected["species"].value_counts().to_dict()
    heavy = clickhouse.query_rows(
        "SELECT body_mass_g, body_mass_kg, size_class FROM penguins "
        "ORDER BY body_mass_g DESC LIMIT 1"
    )[0]
    assert heavy == (6300, 6.3, "large")
    stats = clickhouse.query_df("SELECT * FROM penguin_species_stats ORDER BY species")
    assert stats["birds"].tolist() == [151, 68, 123]
    gentoo = stats.set_index("species").loc["Gentoo"]
    assert gentoo["avg_body_mass_kg"] == pytest.approx(
        expected.loc[expected.species == "Gentoo", "body_mass_kg"].mean(), abs=1e-3
    )


def test_penguins_load_metadata_and_materialization(clickhouse: ClickHouseResource) -> None:
    result = penguins.execute_in_process(resources={"clickhouse": clickhouse})

    # One materialization per table, the load's on the pipeline's graph-backed asset.
    materializations = result.asset_materializations_for_node("penguins__etl")
    assert [m.asset_key.path for m in materializations] == [["clickhouse", "default", "penguins"]]
    events = result.get_asset_materialization_events()
    assert [e.asset_key.path for e in events if e.asset_key is not None] == [
        ["clickhouse", "default", "penguins"],
        ["clickhouse", "default", "penguin_species_stats"],
    ]
    metadata = materializations[0].metadata
    assert metadata["dagster/row_count"].value == 342
    assert metadata["dagster/table_name"].value == "default.penguins"
    columns = [c.name for c in metadata["dagster/column_schema"].value.columns]
    assert "body_mass_kg" in columns and "species" in columns
    load_output = next(
        e
        for e in result.all_events
        if e.is_successful_output and e.step_key == "penguins__etl.penguins__load"
    )
    load_meta = load_output.event_specific_data.metadata  # type: ignore[union-attr]
    assert load_meta["rows"].value == 342
    assert load_meta["peak_memory_mb"].value > 0
    assert load_meta["rows_per_second"].value > 0


def test_penguins_replace_is_idempotent(clickhouse: ClickHouseResource) -> None:
    for _ in range(2):
        assert penguins.execute_in_process(resources={"clickhouse": clickhouse}).success
    assert clickhouse.query_rows("SELECT count() FROM penguins") == [(342,)]


def test_penguins_through_dagster_job_execute(
    clickhouse: ClickHouseResource, data_dir: Path, tmp_path: Path
) -> None:
    done = run_dagster(job_execute_command("penguins"), data_dir, tmp_path / "dagster_home")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr + done.stdout
    assert clickhouse.query_rows("SELECT count() FROM penguins") == [(342,)]


def test_two_concurrent_runs_on_one_embedded_directory_both_succeed(
    data_dir: Path, tmp_path: Path
) -> None:
    env = cli_env(data_dir, tmp_path / "dagster_home")
    # Create the instance's SQLite storage once: two processes creating it at the same moment
    # race in Dagster itself ("table runs already exists"), which is not what this tests.
    with DagsterInstance.from_config(str(tmp_path / "dagster_home")):
        pass
    command = job_execute_command("penguins")
    runs = [
        subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err[-3000:]
        assert "RUN_SUCCESS" in out + err
    resource = ClickHouseResource(url=f"chdb://{data_dir / 'clickhouse'}")
    assert resource.query_rows("SELECT count() FROM penguins") == [(342,)]
    assert resource.query_rows("SELECT sum(birds) FROM penguin_species_stats") == [(342,)]


def test_show_table_prints_what_landed(
    clickhouse: ClickHouseResource, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataproc_dagster.cli.show_table import main

    assert penguins.execute_in_process(resources={"clickhouse": clickhouse}).success
    assert main(["penguins", "default.penguin_species_stats"]) == 0
    out = capsys.readouterr().out
    assert "default.penguins: 342 rows" in out
    assert "default.penguin_species_stats: 3 rows" in out and "Gentoo" in out
    assert main(["no_such_table"]) == 1
    assert "default.no_such_table: does not exist" in capsys.readouterr().out


def test_steps_in_separate_processes_share_the_engine(
    clickhouse: ClickHouseResource, tmp_path: Path
) -> None:
    """Multiprocess executor: each step opens, uses and releases ClickHouse in its own process
    (on the embedded engine, the chDB directory in turn)."""
    from dagster import execute_job, reconstructable

    from dataproc_dagster_tests.helpers.multiprocess_job import multiprocess_job

    (tmp_path / "home").mkdir()
    with (
        DagsterInstance.local_temp(str(tmp_path / "home")) as instance,
        execute_job(reconstructable(multiprocess_job), instance=instance) as result,
    ):
        assert result.success
        pids = {
            e.pid
            for e in result.all_events
            if e.is_step_success
            and e.pid is not None
            and e.step_key.startswith("multiprocess_copy__etl.")
        }
    assert len(pids) == 3  # extract, transform, load: three processes
    assert clickhouse.query_rows("SELECT count(), sum(doubled) FROM mp_copy") == [
        (250_000, 2 * sum(range(250_000)))
    ]
