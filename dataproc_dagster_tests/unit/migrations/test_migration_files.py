"""Discovery and validation of migration files: every bad folder fails before anything runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dataproc_dagster.migrations.errors import MigrationFileError
from dataproc_dagster.migrations.files import discover_migrations, render


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_discovers_files_in_version_order_with_statements_and_raw_checksum(tmp_path: Path) -> None:
    raw = "CREATE TABLE {database}.a {cluster} (x Int8) ENGINE = Log;\n-- done\n"
    write(tmp_path, "0002_second.up.sql", "SELECT 2; SELECT 3;")
    up = write(tmp_path, "0001_create_a.up.sql", raw)
    write(tmp_path, "0001_create_a.down.sql", "DROP TABLE {database}.a;")
    write(tmp_path, "README.md", "not a migration")

    first, second = discover_migrations(tmp_path)

    assert (first.version, first.name, first.label) == (1, "create_a", "0001_create_a")
    assert first.checksum == hashlib.md5(up.read_bytes()).hexdigest()
    assert [s.sql for s in first.up] == [
        "CREATE TABLE {database}.a {cluster} (x Int8) ENGINE = Log"
    ]
    assert first.down_path is not None and first.down_path.name == "0001_create_a.down.sql"
    assert (second.version, len(second.up), second.down_path, second.down) == (2, 2, None, ())


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"1_short.up.sql": "SELECT 1"}, "1_short.up.sql: malformed file name"),
        ({"0001_bad-name.up.sql": "SELECT 1"}, "0001_bad-name.up.sql: malformed file name"),
        ({"0001_create.sql": "SELECT 1"}, "0001_create.sql: malformed file name"),
        (
            {"0001_a.up.sql": "SELECT 1", "0001_b.up.sql": "SELECT 1"},
            "duplicate version 0001: 0001_a.up.sql, 0001_b.up.sql",
        ),
        (
            {"0001_a.up.sql": "SELECT 1", "0003_c.up.sql": "SELECT 1"},
            "gap in the numbering: no up file for version 0002",
        ),
        ({"0002_b.up.sql": "SELECT 1"}, "gap in the numbering: no up file for version 0001"),
        (
            {"0001_a.up.sql": "SELECT 1", "0002_b.down.sql": "SELECT 1"},
            "0002_b.down.sql: down file with no matching up file",
        ),
        (
            {"0001_a.up.sql": "SELECT 1", "0001_other.down.sql": "SELECT 1"},
            "0001_other.down.sql: down file with no matching up file",
        ),
        ({"0001_a.up.sql": ""}, "0001_a.up.sql: empty file (no statement)"),
        ({"0001_a.up.sql": "-- only a comment;\n"}, "0001_a.up.sql: empty file (no statement)"),
        (
            {"0001_a.up.sql": "SELECT 1", "0001_a.down.sql": "  \n"},
            "0001_a.down.sql: empty file (no statement)",
        ),
        (
            {"0001_a.up.sql": "SELECT 'open"},
            "0001_a.up.sql: unterminated string starting at line 1",
        ),
    ],
)
def test_bad_folders_fail_with_the_file_named_and_the_fix(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(MigrationFileError) as caught:
        discover_migrations(tmp_path)
    message = str(caught.value)
    assert expected in message
    assert str(tmp_path) in message
    assert "Fix:" in message


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.up.sql", "SELECT 1")
    write(tmp_path, "0001_b.up.sql", "SELECT 1")
    write(tmp_path, "bogus.sql", "SELECT 1")
    with pytest.raises(MigrationFileError) as caught:
        discover_migrations(tmp_path)
    assert "bogus.sql: malformed file name" in str(caught.value)
    assert "duplicate version 0001" in str(caught.value)


def test_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(MigrationFileError, match="the migrations folder does not exist"):
        discover_migrations(tmp_path / "nope")


def test_empty_folder_has_no_migrations(tmp_path: Path) -> None:
    assert discover_migrations(tmp_path) == []


def test_render_fills_placeholders_for_a_cluster_and_for_one_engine() -> None:
    sql = "CREATE TABLE {database}.t {cluster} (a Int8) ENGINE = Log"
    assert render(sql, database="analytics") == "CREATE TABLE `analytics`.t  (a Int8) ENGINE = Log"
    assert (
        render(sql, database="default", cluster="main")
        == "CREATE TABLE `default`.t ON CLUSTER `main` (a Int8) ENGINE = Log"
    )
