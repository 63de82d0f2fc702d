"""Migration runner benchmark on the embedded ClickHouse: how long the commands take.

Writes N migrations (each a CREATE TABLE of 10 columns plus an ALTER adding one), then prints
the seconds of: reading and validating the folder, ``up``, ``status``, the tables check (one
``system.columns`` read per table, types compared in ClickHouse's spelling), ``down N``, and
the state table's size. Run with ``./run.sh bench`` or
``python -m dataproc_dagster_tests.performance.bench_migrations [--count N]``. Figures are
printed; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.migrations import ClickHouseMigrationManager
from dataproc_dagster.migrations.files import discover_migrations


def write_migrations(folder: Path, count: int) -> None:
    """``count`` migrations, each creating one table and altering it."""
    folder.mkdir(parents=True)
    for n in range(1, count + 1):
        columns = ",\n    ".join(
            [f"id_{n} UInt64", "name LowCardinality(String)", "at DateTime64(3, 'UTC')"]
            + [f"m{i} Nullable(Float64)" for i in range(7)]
        )
        (folder / f"{n:04d}_table_{n}.up.sql").write_text(
            f"-- table {n}\nCREATE TABLE {{database}}.t{n} {{cluster}} (\n    {columns}\n)\n"
            f"ENGINE = MergeTree ORDER BY id_{n};\n"
            f"ALTER TABLE {{database}}.t{n} ADD COLUMN note Nullable(String);\n"
        )
        (folder / f"{n:04d}_table_{n}.down.sql").write_text(f"DROP TABLE {{database}}.t{n} SYNC;")


def timed(label: str, action: Callable[[], Any], count: int) -> Any:
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    print(f"{label:<34} {seconds:8.2f} s   {seconds / count * 1000:8.1f} ms per migration")
    return result


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="migrations to write (200)")
    args, _ = parser.parse_known_args(argv)
    count = args.count
    with tempfile.TemporaryDirectory(prefix="bench_migrations_") as tmp:
        folder = Path(tmp) / "migrations"
        write_migrations(folder, count)
        clickhouse = ClickHouseResource(url=f"chdb://{Path(tmp) / 'clickhouse'}")
        runner = ClickHouseMigrationManager(clickhouse, folder=folder, log=lambda _m: None)
        print(f"{count} migrations, 2 statements each, embedded ClickHouse (chDB)")
        timed("read + validate folder", lambda: discover_migrations(folder), count)
        result = timed("up (all pending)", runner.apply, count)
        assert len(result.done) == count
        status = timed("status", runner.get_migration_status, count)
        assert status.executed_count == count
        timed("up again (nothing pending)", runner.apply, count)
        schema = timed("tables check", runner.check_schema, count)
        print(f"{'':<34} {len(schema.tables)} tables, {len(schema.problems)} problems")
        timed(f"down {count}", lambda: runner.rollback_migrations(count), count)
        rows = clickhouse.query_rows("SELECT count() FROM schema_migrations")[0][0]
        print(f"state table rows after up + up + down: {rows}")


if __name__ == "__main__":
    main()
