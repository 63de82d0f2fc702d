"""The ``clickhouse/schema`` asset, its checks and the migration jobs, run in process on chDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, Definitions, ExecuteInProcessResult

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.migrations.job import ASSET_CHECKS, ASSETS, JOBS, SCHEMA_KEY


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    migrations = tmp_path / "migrations"
    write(
        migrations,
        "0001_create_a.up.sql",
        "CREATE TABLE {database}.a {cluster} (id UInt32, name LowCardinality(String)) "
        "ENGINE = MergeTree ORDER BY id;",
    )
    write(migrations, "0001_create_a.down.sql", "DROP TABLE {database}.a {cluster} SYNC;")
    write(
        migrations,
        "0002_add_score.up.sql",
        "ALTER TABLE {database}.a ADD COLUMN score Nullable(Float64);\n"
        "INSERT INTO {database}.a (id, name) VALUES (1, 'x');",
    )
    write(migrations, "0002_add_score.down.sql", "ALTER TABLE {database}.a DROP COLUMN score;")
    monkeypatch.setenv("MIGRATIONS_DIR", str(migrations))
    return migrations


def run(clickhouse: ClickHouseResource, job: str, **kwargs: Any) -> ExecuteInProcessResult:
    defs = Definitions(
        assets=ASSETS, asset_checks=ASSET_CHECKS, jobs=JOBS, resources={"clickhouse": clickhouse}
    )
    return defs.resolve_job_def(job).execute_in_process(raise_on_error=False, **kwargs)


def penguin_columns(clickhouse: ClickHouseResource) -> dict[str, str]:
    return dict(
        clickhouse.query_rows(
            "SELECT name, type FROM system.columns "
            "WHERE database = 'default' AND table = 'penguins'"
        )
    )


def checks(result: ExecuteInProcessResult) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_migrate_applies_and_every_check_passes_with_status_figures(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    result = run(clickhouse, "migrate")

    assert result.success
    (event,) = result.get_asset_materialization_events()
    materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
    assert materialization.asset_key == AssetKey(["clickhouse", "schema"])
    assert materialization.metadata["executed_count"].value == 2
    assert materialization.metadata["pending_count"].value == 0
    assert materialization.metadata["applied_now"].value == ["0001_create_a", "0002_add_score"]
    evaluations = checks(result)
    assert set(evaluations) == {
        "no_pending_migrations",
        "no_failed_migrations",
        "no_checksum_mismatch",
        "no_missing_migration_files",
        "tables_match_migrations",
    }
    assert all(e.passed for e in evaluations.values())
    assert all(e.asset_key == SCHEMA_KEY for e in evaluations.values())
    figures = evaluations["no_pending_migrations"].metadata
    assert (figures["executed_count"].value, figures["pending_count"].value) == (2, 0)
    assert "| 2 | 0002_add_score.up.sql | applied |" in figures["migrations"].value
    assert evaluations["tables_match_migrations"].metadata["tables"].value == {
        "default.a": ["id", "name", "score"]
    }
    assert clickhouse.query_rows("SELECT id, name, score FROM a") == [(1, "x", None)]


def test_migration_checks_alone_change_nothing_and_report_pending(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    result = run(clickhouse, "migration_checks")

    assert result.success
    assert result.get_asset_materialization_events() == []
    evaluations = checks(result)
    pending = evaluations["no_pending_migrations"]
    assert not pending.passed
    assert pending.severity.value == "WARN"
    assert pending.metadata["pending"].value == ["0001_create_a.up.sql", "0002_add_score.up.sql"]
    assert pending.metadata["pending_count"].value == 2
    assert all(e.passed for name, e in evaluations.items() if name != "no_pending_migrations")
    assert clickhouse.query_rows(
        "SELECT count() FROM system.tables WHERE database = 'default'"
    ) == [(0,)]


def test_tables_check_fails_on_a_schema_changed_by_hand(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    assert run(clickhouse, "migrate").success
    clickhouse.command("ALTER TABLE a DROP COLUMN score")
    clickhouse.command("ALTER TABLE a ADD COLUMN extra String")
    clickhouse.command("ALTER TABLE a MODIFY COLUMN name String")

    evaluations = checks(run(clickhouse, "migration_checks"))

    tables = evaluations["tables_match_migrations"]
    assert not tables.passed
    assert tables.metadata["problems"].value == [
        "default.a: column name is String, the migrations say LowCardinality(String)",
        "default.a: column score is missing",
        "default.a: column extra is not in the migrations",
    ]
    assert all(e.passed for name, e in evaluations.items() if name != "tables_match_migrations")

    clickhouse.command("DROP TABLE a SYNC")
    tables = checks(run(clickhouse, "migration_checks"))["tables_match_migrations"]
    assert tables.metadata["problems"].value == ["table default.a is missing"]


def test_checks_fail_on_an_edited_file_and_on_a_missing_file(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    assert run(clickhouse, "migrate").success
    write(folder, "0001_create_a.up.sql", "CREATE TABLE {database}.a (id UInt64) ENGINE = Log;")
    (folder / "0002_add_score.up.sql").unlink()
    (folder / "0002_add_score.down.sql").unlink()

    evaluations = checks(run(clickhouse, "migration_checks"))

    edited = evaluations["no_checksum_mismatch"]
    assert not edited.passed
    assert edited.metadata["edited_files"].value == ["0001_create_a.up.sql"]
    assert "| 1 | 0001_create_a.up.sql | applied (edited) |" in edited.metadata["migrations"].value
    missing = evaluations["no_missing_migration_files"]
    assert not missing.passed
    assert missing.metadata["missing_files"].value == ["0002_add_score"]
    assert evaluations["no_failed_migrations"].passed


def test_a_failing_migration_fails_the_run_and_the_failed_check(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    write(folder, "0003_broken.up.sql", "CREATE TABLE {database}.b (k NoSuchType) ENGINE = Log;")

    result = run(clickhouse, "migrate")

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = str(failure.step_failure_data.error)  # type: ignore[union-attr]
    assert "migration 0003_broken (up) failed at statement 1 of 1" in error
    assert "NoSuchType" in error
    evaluations = checks(run(clickhouse, "migration_checks"))
    failed = evaluations["no_failed_migrations"]
    assert not failed.passed
    assert failed.metadata["failed_count"].value == 1
    assert failed.metadata["executed_count"].value == 2
    assert "0003_broken (up) is failed at statement 1 of 1: " in (failed.description or "")
    assert failed.metadata["failed"].value[0]["failed_statement"] == 1


def test_checks_fail_clearly_on_a_malformed_folder(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    write(folder, "0004_gap.up.sql", "SELECT 1;")
    evaluations = checks(run(clickhouse, "migration_checks"))
    assert len(evaluations) == 5
    for evaluation in evaluations.values():
        assert not evaluation.passed
        assert "gap in the numbering" in evaluation.metadata["error"].value


def test_migrate_rollback_takes_count_from_run_config(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    assert run(clickhouse, "migrate").success
    config = {"ops": {"rollback_migrations": {"config": {"count": 1}}}}

    result = run(clickhouse, "migrate_rollback", run_config=config)

    assert result.success
    assert result.output_for_node("rollback_migrations") == {"rolled_back": ["0002_add_score"]}
    (event,) = result.get_asset_materialization_events()
    metadata = event.event_specific_data.materialization.metadata  # type: ignore[union-attr]
    assert (metadata["executed_count"].value, metadata["pending_count"].value) == (1, 1)
    assert [
        row[0] for row in clickhouse.query_rows("SELECT name FROM system.columns WHERE table = 'a'")
    ] == [
        "id",
        "name",
    ]
    evaluations = checks(run(clickhouse, "migration_checks"))
    assert evaluations["tables_match_migrations"].passed  # the expectation follows the rollback
    assert not evaluations["no_pending_migrations"].passed


def test_project_migrations_create_the_table_the_sample_pipeline_loads(
    clickhouse: ClickHouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataproc_dagster.pipelines.penguins import pipeline as penguins

    monkeypatch.delenv("MIGRATIONS_DIR", raising=False)
    assert run(clickhouse, "migrate").success
    expected = penguin_columns(clickhouse)
    assert expected["bill_length_mm"] == "Nullable(Float64)"
    assert expected["species"] == "LowCardinality(String)"

    assert penguins.execute_in_process(resources={"clickhouse": clickhouse}).success

    after = penguin_columns(clickhouse)
    assert after == expected  # the loader kept the migration-owned schema
    assert clickhouse.query_rows("SELECT count() FROM penguins") == [(342,)]
    assert all(e.passed for e in checks(run(clickhouse, "migration_checks")).values())
