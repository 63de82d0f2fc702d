"""The tables and columns that applied migration files should have produced."""

from __future__ import annotations

from dataproc_dagster.migrations.schema import expected_tables


def test_create_table_columns_skip_indexes_defaults_codecs_and_comments() -> None:
    tables = expected_tables(
        [
            """CREATE TABLE IF NOT EXISTS `default`.events ON CLUSTER `c` (
                 id UInt64, -- key, first
                 `kind` LowCardinality(String) DEFAULT 'x,y',
                 tags Map(String, Array(UInt8)) CODEC(ZSTD(1)),
                 at DateTime64(3, 'UTC') COMMENT 'when, exactly',
                 INDEX by_kind kind TYPE set(0) GRANULARITY 1
               ) ENGINE = MergeTree ORDER BY id"""
        ],
        "default",
    )
    assert tables == {
        "default.events": {
            "id": "UInt64",
            "kind": "LowCardinality(String)",
            "tags": "Map(String, Array(UInt8))",
            "at": "DateTime64(3, 'UTC')",
        }
    }


def test_alter_drop_and_rename_are_replayed_in_order() -> None:
    tables = expected_tables(
        [
            "CREATE TABLE a (x Int8, y String, z Float64) ENGINE = Log",
            "ALTER TABLE a ADD COLUMN IF NOT EXISTS w Nullable(Int32) AFTER x, DROP COLUMN y, "
            "RENAME COLUMN z TO zz, MODIFY COLUMN x Int16",
            "CREATE TABLE analytics.b AS a",
            "CREATE TABLE gone (g Int8) ENGINE = Log",
            "DROP TABLE IF EXISTS default.gone SYNC",
            "RENAME TABLE a TO a2",
            "CREATE VIEW v AS SELECT 1",
            "INSERT INTO a2 VALUES (1, 2, 3.0)",
        ],
        "default",
    )
    assert tables == {
        "default.a2": {"x": "Int16", "zz": "Float64", "w": "Nullable(Int32)"},
        "analytics.b": None,
    }
