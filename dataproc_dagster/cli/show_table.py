"""Print what landed in ClickHouse tables.

``python -m dataproc_dagster.cli.show_table TABLE...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd

from dataproc_dagster.clickhouse.connection import ClickHouseConnection
from dataproc_dagster.clickhouse.sql import qualified_name, scalar
from dataproc_dagster.clickhouse.tables import split_table
from dataproc_dagster.core.errors import DataprocError
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.pipeline.sql_steps import READ_MERGED


def show(tables: Sequence[str], sample_rows: int = 5) -> int:
    """Print engine location, row count and a few rows of each table; return an exit code.

    Tables are read with ``FINAL`` where the engine supports it, so an upsert table shows each
    key once even before ClickHouse has merged it.
    """
    settings = get_settings()
    resource = ClickHouseConnection.from_settings(settings)
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
            counted = client.query(f"SELECT count() FROM {qualified}", settings=READ_MERGED)
            rows = int(counted.result_rows[0][0])
            print(f"\n{database}.{table}: {rows} rows")
            sample = client.query_df(
                f"SELECT * FROM {qualified} LIMIT {int(sample_rows)}", settings=READ_MERGED
            )
            with pd.option_context("display.width", 160, "display.max_columns", 20):
                print(sample.to_string(index=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dataproc_dagster.cli.show_table [--rows N] TABLE...``.

    Returns 1 when a table is missing.
    """
    parser = argparse.ArgumentParser(
        prog="python -m dataproc_dagster.cli.show_table",
        description="Print the row count and the first rows of ClickHouse tables (the "
        "CLICKHOUSE_URL of the environment or .env). Upsert tables are read with FINAL, so "
        "each key counts once.",
    )
    parser.add_argument("tables", nargs="+", metavar="TABLE", help="table or database.table")
    parser.add_argument(
        "--rows", type=int, default=5, metavar="N", help="sample rows to print (default 5)"
    )
    args = parser.parse_args(argv)
    try:
        return show(args.tables, sample_rows=args.rows)
    except DataprocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
