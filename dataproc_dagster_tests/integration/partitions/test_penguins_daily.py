"""The partitioned sample pipeline: one day in-process, then backfills from the command line
(`dagster asset materialize --partition` and `--partition-range`, a single run)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.pipelines.penguins import PENGUINS_CSV
from dataproc_dagster.pipelines.penguins_daily import DAYS, FIRST_DAY, clean_observations, pipeline
from dataproc_dagster_tests.helpers.cli import dagster_executable, run_dagster

KEY = AssetKey(["clickhouse", "default", "penguin_observations"])


def expected_per_day() -> dict[str, int]:
    """Cleaned birds per day: CSV row ``i`` (0-based) was observed on day ``i % 31``."""
    birds = pd.read_csv(str(PENGUINS_CSV))
    birds["observed_on"] = [str(FIRST_DAY + timedelta(days=i % DAYS)) for i in birds.index]
    kept = clean_observations(birds)
    return {str(day): int(n) for day, n in kept["observed_on"].value_counts().items()}


def per_day(clickhouse: ClickHouseResource) -> dict[str, int]:
    rows = clickhouse.query_rows(
        "SELECT toString(observed_on), count() FROM penguin_observations GROUP BY 1 ORDER BY 1"
    )
    return {day: int(n) for day, n in rows}


def test_one_day_in_process_then_again(clickhouse: ClickHouseResource) -> None:
    resources = {"clickhouse": clickhouse}
    for _ in range(2):
        result = pipeline.execute_in_process(resources=resources, partition_key="2024-01-05")
        assert result.success
    expected = expected_per_day()
    assert per_day(clickhouse) == {"2024-01-05": expected["2024-01-05"]}
    (event,) = result.asset_materializations_for_node("penguins_daily__etl")
    assert event.partition == "2024-01-05"
    assert event.metadata["partition_rows"].value == expected["2024-01-05"]


# The command line costs two code-location loads; the server backend is covered in-process.
@pytest.mark.backends("embedded")
def test_backfill_from_the_command_line(clickhouse: ClickHouseResource, tmp_path: Path) -> None:
    data_dir, home = tmp_path / "data", tmp_path / "home"
    base = [dagster_executable(), "asset", "materialize", "-m", "dataproc_dagster"]
    select = ["--select", KEY.to_user_string()]
    one = run_dagster([*base, *select, "--partition", "2024-01-31"], data_dir, home)
    assert one.returncode == 0, one.stderr[-3000:]
    ten = run_dagster(
        [*base, *select, "--partition-range", "2024-01-01...2024-01-10"], data_dir, home
    )
    assert ten.returncode == 0, ten.stderr[-3000:]
    reader = ClickHouseResource(url=clickhouse.url) if clickhouse.url.startswith("http") else None
    if reader is None:  # the CLI wrote the embedded engine of its own data directory
        reader = ClickHouseResource(url=f"chdb://{data_dir / 'clickhouse'}")
    expected = expected_per_day()
    loaded = [f"2024-01-{d:02d}" for d in range(1, 11)] + ["2024-01-31"]
    assert per_day(reader) == {day: expected[day] for day in loaded}
    assert reader.query_rows(
        "SELECT count() = uniqExact(penguin_id) FROM penguin_observations"
    ) == [(1,)]
    with DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_materialized_partitions(KEY)) == 11
        runs = instance.get_runs()
        assert len(runs) == 2  # the range was one run (single_run backfill policy)
