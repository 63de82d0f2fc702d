"""The file extractor: CSV and Parquet in chunks, clear errors for missing or unknown files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dataproc_dagster import create_clickhouse_loader, create_etl_pipeline, create_file_extractor
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.errors import SourceError
from dataproc_dagster_tests.helpers.pipelines import failure_message


def _run(clickhouse: ClickHouseResource, path: Path, **options: object) -> object:
    pipeline = create_etl_pipeline(
        "files",
        extractor=create_file_extractor(path, **options),  # type: ignore[arg-type]
        loader=create_clickhouse_loader("from_file", mode="replace"),
    )
    return pipeline.execute_in_process(resources={"clickhouse": clickhouse}, raise_on_error=False)


def test_parquet_file_is_read_in_chunks(clickhouse: ClickHouseResource, tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pd.DataFrame({"id": range(25_000), "kind": ["a", "b"] * 12_500}).to_parquet(path)
    result = _run(clickhouse, path, chunk_rows=10_000)
    assert result.success  # type: ignore[attr-defined]
    assert clickhouse.query_rows("SELECT count(), countIf(kind = 'b') FROM from_file") == [
        (25_000, 12_500)
    ]


def test_csv_with_read_options(clickhouse: ClickHouseResource, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("sku;price\nA-1;1,50\nB-2;2,25\n")
    result = _run(clickhouse, path, read_options={"sep": ";", "decimal": ","})
    assert result.success  # type: ignore[attr-defined]
    assert clickhouse.query_rows("SELECT sku, price FROM from_file ORDER BY sku") == [
        ("A-1", 1.5),
        ("B-2", 2.25),
    ]


def test_missing_file_names_the_file_and_the_pipeline(
    clickhouse: ClickHouseResource, tmp_path: Path
) -> None:
    result = _run(clickhouse, tmp_path / "nope.csv")
    message = failure_message(result)  # type: ignore[arg-type]
    assert "[pipeline files]" in message and "nope.csv" in message
    assert "the file does not exist" in message


def test_unknown_format_is_refused() -> None:
    with pytest.raises(SourceError, match="unsupported file format 'xlsx'"):
        create_file_extractor("report.xlsx")
