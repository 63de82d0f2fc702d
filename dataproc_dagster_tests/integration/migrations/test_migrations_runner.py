"""The migration runner on the real embedded ClickHouse (chDB)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.migrations import (
    ClickHouseMigrationManager,
    MigrationFailedError,
    MigrationFileError,
    MigrationLockError,
    MigrationStateError,
)
from dataproc_dagster.migrations.config import MigrationSettings
from dataproc_dagster.migrations.state import StateTable

CREATE_A = (
    "CREATE TABLE {database}.a {cluster} (id UInt32, name String) ENGINE = MergeTree ORDER BY id;"
)
ADD_B = "ALTER TABLE {database}.a {cluster} ADD COLUMN b Nullable(Int64);"
SEED = "INSERT INTO {database}.a (id, name) VALUES (1, 'one;two'), (2, 'it''s');"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three migrations: create a table, add a column and seed rows, create a second table."""
    migrations = tmp_path / "migrations"
    write(migrations, "0001_create_a.up.sql", f"-- table a\n{CREATE_A}\n")
    write(migrations, "0001_create_a.down.sql", "DROP TABLE {database}.a {cluster} SYNC;")
    write(migrations, "0002_add_b_and_seed.up.sql", f"{ADD_B}\n{SEED}\n")
    write(
        migrations,
        "0002_add_b_and_seed.down.sql",
        "ALTER TABLE {database}.a DROP COLUMN b;\nTRUNCATE TABLE {database}.a;",
    )
    write(
        migrations,
        "0003_create_c.up.sql",
        "CREATE TABLE {database}.c (k String) ENGINE = MergeTree ORDER BY k;",
    )
    write(migrations, "0003_create_c.down.sql", "DROP TABLE {database}.c SYNC;")
    return migrations


def manager(
    clickhouse: ClickHouseResource, folder: Path, **settings: float
) -> ClickHouseMigrationManager:
    return ClickHouseMigrationManager(
        clickhouse,
        folder=folder,
        settings=MigrationSettings(**settings),  # type: ignore[arg-type]
    )


def tables(clickhouse: ClickHouseResource) -> set[str]:
    return {
        row[0]
        for row in clickhouse.query_rows(
            "SELECT name FROM system.tables WHERE database = 'default'"
        )
    }


def columns(clickhouse: ClickHouseResource, table: str) -> dict[str, str]:
    return dict(
        clickhouse.query_rows(
            "SELECT name, type FROM system.columns WHERE database = 'default' AND table = %(t)s",
            {"t": table},
        )
    )


def test_apply_status_rollback_and_reapply(clickhouse: ClickHouseResource, folder: Path) -> None:
    runner = manager(clickhouse, folder)

    before = runner.get_migration_status()
    assert (before.executed_count, before.pending_count, before.failed) == (0, 3, ())
    assert tables(clickhouse) == set()  # status reads only: not even the state table is created

    result = runner.apply()
    assert list(result.done) == ["0001_create_a", "0002_add_b_and_seed", "0003_create_c"]
    status = result.status
    assert (status.executed_count, status.pending_count, status.current_version) == (
        3,
        0,
        3,
    )
    assert [r.status for r in status.migrations] == ["applied"] * 3
    assert all(r.applied_at and r.duration_ms is not None for r in status.migrations)
    assert columns(clickhouse, "a") == {"id": "UInt32", "name": "String", "b": "Nullable(Int64)"}
    assert clickhouse.query_rows("SELECT id, name FROM a ORDER BY id") == [
        (1, "one;two"),
        (2, "it's"),
    ]
    assert list(runner.apply().done) == []  # nothing runs twice

    rolled = runner.rollback_migrations(2)
    assert list(rolled.done) == ["0003_create_c", "0002_add_b_and_seed"]
    assert "c" not in tables(clickhouse)
    assert columns(clickhouse, "a") == {"id": "UInt32", "name": "String"}
    assert clickhouse.query_rows("SELECT count() FROM a") == [(0,)]
    after = runner.get_migration_status()
    assert (after.executed_count, after.pending_count, after.current_version) == (1, 2, 1)
    assert [r.status for r in after.migrations] == ["applied", "pending", "pending"]

    assert list(runner.apply().done) == ["0002_add_b_and_seed", "0003_create_c"]
    assert clickhouse.query_rows("SELECT count() FROM a") == [(2,)]
    assert {"a", "c", "schema_migrations"} <= tables(clickhouse)


def test_dry_run_lists_rendered_statements_and_changes_nothing(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    logged: list[str] = []
    runner = ClickHouseMigrationManager(clickhouse, folder=folder, log=logged.append)
    result = runner.apply(dry_run=True)
    assert [(s.migration, s.number) for s in result.statements] == [
        ("0001_create_a", 1),
        ("0002_add_b_and_seed", 1),
        ("0002_add_b_and_seed", 2),
        ("0003_create_c", 1),
    ]
    assert result.statements[0].sql == (
        "CREATE TABLE `default`.a  (id UInt32, name String) ENGINE = MergeTree ORDER BY id"
    )
    assert any("0002_add_b_and_seed #2: INSERT INTO `default`.a" in line for line in logged)
    assert tables(clickhouse) == set()


def test_failure_in_the_middle_of_a_file_leaves_a_failed_row_that_blocks_until_repaired(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    # Statement 1 works, statement 2 names a type that does not exist, statement 3 never runs.
    write(
        folder,
        "0002_add_b_and_seed.up.sql",
        f"{ADD_B}\nALTER TABLE {{database}}.a ADD COLUMN z NotAType;\n{SEED}\n",
    )
    runner = manager(clickhouse, folder)
    with pytest.raises(MigrationFailedError) as caught:
        runner.apply()
    message = str(caught.value)
    assert "migration 0002_add_b_and_seed (up) failed at statement 2 of 3 (line 2" in message
    assert "NotAType" in message
    assert "repair" in message

    # The first statement stayed applied; the third did not run; 0003 did not run.
    assert "b" in columns(clickhouse, "a")
    assert clickhouse.query_rows("SELECT count() FROM a") == [(0,)]
    assert "c" not in tables(clickhouse)

    status = runner.get_migration_status()
    assert status.executed_count == 1
    assert status.failed_count == 1
    failed = status.failed[0]
    assert (failed.version, failed.status, failed.failed_statement) == (2, "failed", 2)
    assert "NotAType" in failed.error

    for command in (runner.apply, lambda: runner.rollback_migrations(1)):
        with pytest.raises(MigrationStateError, match="is failed at statement 2 of 3"):
            command()
    with pytest.raises(MigrationStateError, match="refused"):
        runner.apply(dry_run=True)

    # A human undoes statement 1 and fixes the file; repair makes 0002 pending again.
    clickhouse.command("ALTER TABLE a DROP COLUMN b")
    write(folder, "0002_add_b_and_seed.up.sql", f"{ADD_B}\n{SEED}\n")
    assert list(runner.repair().done) == ["0002_add_b_and_seed"]
    repaired = runner.get_migration_status()
    assert (repaired.failed, repaired.pending_count) == ((), 2)

    assert list(runner.apply().done) == ["0002_add_b_and_seed", "0003_create_c"]
    assert clickhouse.query_rows("SELECT count() FROM a") == [(2,)]


def test_repair_applied_records_a_migration_a_human_completed(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    write(folder, "0003_create_c.up.sql", "CREATE TABLE {database}.c (k NotAType) ENGINE = Log;")
    runner = manager(clickhouse, folder)
    with pytest.raises(MigrationFailedError, match="0003_create_c"):
        runner.apply()
    clickhouse.command("CREATE TABLE c (k String) ENGINE = MergeTree ORDER BY k")
    write(
        folder,
        "0003_create_c.up.sql",
        "CREATE TABLE {database}.c (k String) ENGINE = MergeTree ORDER BY k;",
    )

    result = runner.repair(mark_applied=True)

    assert list(result.done) == ["0003_create_c"]
    assert (result.status.executed_count, result.status.pending_count) == (3, 0)
    assert list(result.status.checksum_mismatches) == []  # repair records the fixed file's checksum


def test_editing_an_applied_file_is_refused_naming_the_file(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    runner = manager(clickhouse, folder)
    runner.apply()
    write(folder, "0001_create_a.up.sql", CREATE_A.replace("name String", "name String, x Int8"))
    write(folder, "0004_more.up.sql", "CREATE TABLE {database}.d (k String) ENGINE = Log;")

    status = runner.get_migration_status()
    assert list(status.checksum_mismatches) == ["0001_create_a.up.sql"]
    assert status.migrations[0].checksum_ok is False
    with pytest.raises(MigrationStateError) as caught:
        runner.apply()
    assert "checksum mismatch): 0001_create_a.up.sql" in str(caught.value)
    assert "d" not in tables(clickhouse)


def test_applied_version_missing_from_the_folder_is_refused(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    runner = manager(clickhouse, folder)
    runner.apply()
    for name in ("0003_create_c.up.sql", "0003_create_c.down.sql"):
        (folder / name).unlink()
    status = runner.get_migration_status()
    assert list(status.missing_files) == ["0003_create_c"]
    with pytest.raises(
        MigrationStateError, match=r"applied version\(s\) have no file in the folder: 0003_create_c"
    ):
        runner.apply()


def test_down_refuses_before_touching_anything_when_a_down_file_is_missing(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    (folder / "0002_add_b_and_seed.down.sql").unlink()
    runner = manager(clickhouse, folder)
    runner.apply()
    with pytest.raises(MigrationStateError) as caught:
        runner.rollback_migrations(2)
    assert "no down file for 0002_add_b_and_seed; nothing was rolled back" in str(caught.value)
    assert "c" in tables(clickhouse)  # 0003, which has a down file, was not rolled back either
    assert runner.get_migration_status().executed_count == 3
    with pytest.raises(MigrationStateError, match="only 3 applied"):
        runner.rollback_migrations(4)
    assert list(runner.rollback_migrations(1).done) == ["0003_create_c"]


def test_baseline_marks_existing_schema_as_applied(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    clickhouse.command(
        "CREATE TABLE a (id UInt32, name String, b Nullable(Int64)) ENGINE = MergeTree ORDER BY id"
    )
    runner = manager(clickhouse, folder)

    with pytest.raises(MigrationStateError, match="no migration file with version 0009"):
        runner.baseline(9)
    result = runner.baseline(2)
    assert list(result.done) == ["0001_create_a", "0002_add_b_and_seed"]
    assert [r.status for r in result.status.migrations] == [
        "baseline",
        "baseline",
        "pending",
    ]
    assert result.status.executed_count == 2

    assert list(runner.apply().done) == ["0003_create_c"]
    assert clickhouse.query_rows("SELECT count() FROM a") == [(0,)]  # the seed of 0002 did not run
    with pytest.raises(
        MigrationStateError, match="cannot baseline: migrations are already recorded"
    ):
        runner.baseline(1)


def test_bad_folder_fails_before_anything_is_applied(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    write(folder, "0005_gap.up.sql", "CREATE TABLE {database}.gap (k String) ENGINE = Log;")
    with pytest.raises(
        MigrationFileError, match="gap in the numbering: no up file for version 0004"
    ):
        manager(clickhouse, folder).apply()
    assert tables(clickhouse) == set()


def test_a_live_lock_claim_makes_up_fail_clearly_and_an_expired_one_is_ignored(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    # A claim of this very process (another thread) is live: the file lock cannot tell.
    live = f"{socket.gethostname()}:{os.getpid()}:deadbeef"
    runner = manager(clickhouse, folder, migrations_lock_timeout=0.3)
    with clickhouse.get_client() as client:
        state = StateTable(client, database="default", table="schema_migrations")
        state.ensure()
        state.claim_lock(live, ttl=60)

    with pytest.raises(MigrationLockError) as caught:
        runner.apply()
    assert f"another migration runner ({live}) holds the lock until" in str(caught.value)
    assert "a" not in tables(clickhouse)

    with clickhouse.get_client() as client:
        state = StateTable(client, database="default", table="schema_migrations")
        state.claim_lock(live, ttl=0)  # its claim expired
    assert len(runner.apply().done) == 3


# On a server the claim of another host is honoured until it expires (the test above).
@pytest.mark.backends("embedded")
def test_on_the_embedded_engine_a_claim_of_another_process_is_released_at_once(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    # Holding the engine's file lock proves that the process that wrote it is not running.
    messages: list[str] = []
    runner = ClickHouseMigrationManager(
        clickhouse,
        folder=folder,
        settings=MigrationSettings(migrations_lock_timeout=0.3),  # type: ignore[call-arg]
        log=messages.append,
    )
    with clickhouse.get_client() as client:
        state = StateTable(client, database="default", table="schema_migrations")
        state.ensure()
        state.claim_lock("other-host:4242:deadbeef:run-1", ttl=600)

    started = time.monotonic()
    assert len(runner.apply().done) == 3
    assert time.monotonic() - started < 10
    assert any(
        "released the stale migration lock claim of host other-host, pid 4242, run run-1" in m
        for m in messages
    ), messages


def test_lock_goes_to_the_oldest_live_claim(clickhouse: ClickHouseResource) -> None:
    with clickhouse.get_client() as client:
        state = StateTable(client, database="default", table="schema_migrations")
        state.ensure()
        state.acquire_lock("first", ttl=60, timeout=0, settle=0)
        with pytest.raises(MigrationLockError, match=r"\(first\) holds the lock"):
            state.acquire_lock("second", ttl=60, timeout=0.2, settle=0)
        holder = state.lock_holder()
        assert holder is not None and holder[0] == "first"
        state.release_lock("first")
        state.acquire_lock("second", ttl=60, timeout=0, settle=0)
        holder = state.lock_holder()
        assert holder is not None and holder[0] == "second"


def test_a_refreshed_claim_outlives_its_first_expiry(clickhouse: ClickHouseResource) -> None:
    with clickhouse.get_client() as client:
        state = StateTable(client, database="default", table="schema_migrations")
        state.ensure()
        state.acquire_lock("runner", ttl=0.5, timeout=0, settle=0)
        state.claim_lock("runner", ttl=60)  # the heartbeat before each migration
        time.sleep(0.7)
        holder = state.lock_holder()
        assert holder is not None and holder[0] == "runner"
        state.claim_lock("runner", ttl=0)
        assert state.lock_holder() is None


def test_a_failed_down_is_recorded_and_repaired_like_a_failed_up(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    write(
        folder,
        "0003_create_c.down.sql",
        "DROP TABLE {database}.c SYNC;\nDROP TABLE {database}.no_such_table SYNC;",
    )
    runner = manager(clickhouse, folder)
    runner.apply()
    with pytest.raises(MigrationFailedError, match=r"0003_create_c \(down\) failed at statement 2"):
        runner.rollback_migrations(1)
    failed = runner.get_migration_status().failed
    assert [(f.version, f.operation, f.failed_statement) for f in failed] == [(3, "down", 2)]
    assert "c" not in tables(clickhouse)  # statement 1 ran

    # The table is gone, as the down file meant: repair records 0003 as not applied.
    status = runner.repair().status
    assert (status.executed_count, status.pending_count, status.failed) == (2, 1, ())


def test_default_manager_uses_the_settings_and_the_project_migrations(data_dir: Path) -> None:
    runner = ClickHouseMigrationManager()

    assert runner.clickhouse.embedded_path == (data_dir / "clickhouse").resolve()
    assert runner.folder == Path(__file__).resolve().parents[3] / "migrations"
    status = runner.get_migration_status()
    assert status.migrations[0].file == "0001_create_penguins.up.sql"
    assert runner.apply().done[0] == "0001_create_penguins"
    assert list(runner.check_schema().problems) == []


def test_expected_schema_follows_the_applied_migrations(
    clickhouse: ClickHouseResource, folder: Path
) -> None:
    runner = manager(clickhouse, folder)
    assert runner.expected_schema() == {}
    runner.apply()
    assert runner.expected_schema() == {
        "default.a": {"id": "UInt32", "name": "String", "b": "Nullable(Int64)"},
        "default.c": {"k": "String"},
    }
    runner.rollback_migrations(2)
    assert runner.expected_schema() == {"default.a": {"id": "UInt32", "name": "String"}}
    assert runner.check_schema().to_dict() == {
        "tables": {"default.a": ["id", "name"]},
        "problems": [],
    }


def test_a_lease_is_kept_alive_while_renewed_and_expires_soon_after(
    clickhouse: ClickHouseResource,
) -> None:
    from dataproc_dagster.migrations.state import LeaseKeeper

    warnings: list[str] = []
    with clickhouse.get_client() as client:
        state = StateTable(client, database="default", table="schema_migrations")
        state.ensure()
        state.acquire_lock("runner-a", ttl=1.0, timeout=0, settle=0)
        with LeaseKeeper(
            clickhouse.get_client, state, "runner-a", ttl=1.0, interval=0.25, warn=warnings.append
        ) as lease:
            time.sleep(2.5)  # well past the first lease: only the renewals keep it
            holder = state.lock_holder()
            assert holder is not None and holder[0] == "runner-a"
        assert lease.renewals >= 4 and warnings == []
        time.sleep(1.5)  # the holder "died": no more renewals
        assert state.lock_holder() is None
        assert [valid for _, _, valid in state.unreleased_claims()] == [False]
        state.acquire_lock("runner-b", ttl=1.0, timeout=0, settle=0)  # at once, no wait


def test_lease_renewal_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ValueError, match="MIGRATIONS_LOCK_HEARTBEAT"):
        MigrationSettings(migrations_lock_ttl=2, migrations_lock_heartbeat=3)  # type: ignore[call-arg]
