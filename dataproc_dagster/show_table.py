"""Print what landed in ClickHouse tables: ``python -m dataproc_dagster.show_table TABLE...``."""

from __future__ import annotations

import sys

import pandas as pd

from dataproc_dagster.errors import DataprocError
from dataproc_dagster.ops.loaders.clickhouse import split_table
from dataproc_dagster.resources.clickhouse import ClickHouseResource, qualified_name, scalar
from dataproc_dagster.settings import get_settings


def show(tables: list[str], sample_rows: int = 5) -> int:
    """Print engine location, row count and a few rows of each table; return an exit code."""
    settings = get_settings()
    resource = ClickHouseResource.from_settings(settings)
    print(resource.describe())
    with resource.get_client(step="show_table") as client:
        for name in tables:
            database, table = split_table(name, resource.database)
            qualified = qualified_name(table, database)
            exists = scalar(
                client,
                "SELECT count() FROM system.tables WHERE database = {d:String} "
                "AND name = {t:String}",
                {"d": database, "t": table},
            )
            if not exists:
                print(f"\n{database}.{table}: does not exist")
                return 1
            rows = scalar(client, f"SELECT count() FROM {qualified}")
            print(f"\n{database}.{table}: {rows} rows")
            sample = client.query_df(f"SELECT * FROM {qualified} LIMIT {int(sample_rows)}")
            with pd.option_context("display.width", 160, "display.max_columns", 20):
                print(sample.to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m dataproc_dagster.show_table TABLE [TABLE ...]", file=sys.stderr)
        return 2
    try:
        return show(args)
    except DataprocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
