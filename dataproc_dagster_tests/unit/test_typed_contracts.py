"""Modes, policies and statuses are enums; results are frozen dataclasses read by attribute."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, get_args

import pytest

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.modes import DriftPolicy, WriteMode
from dataproc_dagster.integrity.job import table_result_of
from dataproc_dagster.integrity.results import CheckResult, CheckStatus, TableState
from dataproc_dagster.loading.config import DriftPolicyName, WriteModeName
from dataproc_dagster.loading.loader import create_clickhouse_loader
from dataproc_dagster.loading.spec import LoadSpec
from dataproc_dagster.migrations.schema import ProblemKind, SchemaProblem
from dataproc_dagster.migrations.status import (
    CommandResult,
    DirtyMigration,
    MigrationFileStatus,
    MigrationState,
    MigrationStatus,
)
from dataproc_dagster.sources.http.auth import ApiKeyLocation, AuthKind, HttpAuth, api_key
from dataproc_dagster.sources.http.config import (
    ApiKeyLocationName,
    AuthKindName,
    ListModeName,
    PaginationStyleName,
)
from dataproc_dagster.sources.http.pagination import PAGINATORS
from dataproc_dagster.sources.http.records import ListMode
from dataproc_dagster.sources.metabase.extractor import ReadMethodName
from dataproc_dagster.sources.metabase.paging import ReadMethod


def test_the_loader_factory_takes_the_enum_or_its_string() -> None:
    by_enum = create_clickhouse_loader(
        "db.t", mode=WriteMode.UPSERT, key_columns=["id"], schema_drift=DriftPolicy.EVOLVE
    )
    by_text = create_clickhouse_loader(
        "db.t", mode="upsert", key_columns=["id"], schema_drift="evolve"
    )
    assert by_enum.spec == by_text.spec
    assert by_text.spec is not None
    assert by_text.spec.mode is WriteMode.UPSERT
    assert by_text.spec.schema_drift is DriftPolicy.EVOLVE


@pytest.mark.parametrize(
    ("options", "message", "valid"),
    [
        ({"mode": "upsrt"}, "unknown write mode 'upsrt'", "append, replace, replace_partitions"),
        ({"schema_drift": "evolv"}, "unknown schema_drift policy 'evolv'", "evolve, freeze"),
    ],
)
def test_an_unknown_value_names_the_valid_ones(
    options: dict[str, str], message: str, valid: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        create_clickhouse_loader("db.t", **options)  # type: ignore[arg-type]
    assert raised.value.source == "db.t"
    assert valid in (raised.value.fix or "")


def test_specs_built_from_strings_hold_the_enums() -> None:
    assert LoadSpec(database="d", table="t", mode="replace").mode is WriteMode.REPLACE  # type: ignore[arg-type]
    auth = HttpAuth(kind="api_key", name="k", location="query")  # type: ignore[arg-type]
    assert (auth.kind, auth.location) == (AuthKind.API_KEY, ApiKeyLocation.QUERY)
    with pytest.raises(ConfigError, match="unknown api_key location 'hedaer'") as raised:
        api_key("X-Key", "KEY", location="hedaer")
    assert "header, query" in (raised.value.fix or "")


@pytest.mark.parametrize(
    ("literal", "values"),
    [
        (WriteModeName, list(WriteMode)),
        (DriftPolicyName, list(DriftPolicy)),
        (AuthKindName, list(AuthKind)),
        (ApiKeyLocationName, list(ApiKeyLocation)),
        (ListModeName, list(ListMode)),
        (PaginationStyleName, list(PAGINATORS)),
        (ReadMethodName, list(ReadMethod)),
    ],
)
def test_each_run_config_choice_offers_exactly_the_library_values(
    literal: Any, values: list[str]
) -> None:
    # The Literal is what the Launchpad offers and refuses typos against; the StrEnum (or the
    # paginator registry) is what the library parses. They must not drift apart.
    assert list(get_args(literal)) == [str(v) for v in values]
    # The run config keeps the lowercase strings (an Enum field would take member names).
    assert all(type(v) is str and v == v.lower() for v in get_args(literal))


def _status(*, interrupted: bool | None) -> MigrationStatus:
    row = MigrationFileStatus(
        version=1,
        name="create_a",
        file="0001_create_a.up.sql",
        has_down=True,
        status=MigrationState.RUNNING,
        applied=False,
        checksum="abc",
        checksum_ok=True,
        applied_at=None,
        duration_ms=None,
        statements=2,
    )
    dirty = DirtyMigration(1, "create_a", MigrationState.RUNNING, "up", 0, 2, "", interrupted)
    return MigrationStatus(
        database="default",
        folder="migrations",
        executed_count=0,
        pending_count=0,
        failed_count=1,
        failed=(dirty,),
        checksum_mismatches=(),
        missing_files=(),
        current_version=None,
        latest_version=1,
        migrations=(row,),
    )


def test_migration_status_is_frozen_and_prints_as_plain_json() -> None:
    status = _status(interrupted=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.pending_count = 3  # type: ignore[misc]
    data = json.loads(json.dumps(status.to_dict()))
    assert data["migrations"][0]["status"] == "running"
    assert data["failed"][0] == {
        "version": 1,
        "name": "create_a",
        "status": "running",
        "operation": "up",
        "failed_statement": 0,
        "statements": 2,
        "error": "",
    }  # "interrupted" only once it is known
    assert "lock_holders" not in data
    assert not status.clean
    assert _status(interrupted=True).to_dict()["failed"][0]["interrupted"] is True
    assert "was interrupted" in _status(interrupted=True).failed[0].describe()
    assert "is running" in _status(interrupted=False).failed[0].describe()


def test_a_command_result_prints_under_its_verb() -> None:
    status = _status(interrupted=None)
    assert list(CommandResult("down", ("0001_create_a",), status).to_dict()) == [
        "rolled_back",
        "status",
    ]
    assert list(CommandResult("up", (), status).to_dict()) == [
        "applied",
        "dry_run",
        "statements",
        "status",
    ]


def _tables_check(*states: TableState) -> CheckResult:
    failed = any(s.problems for s in states)
    return CheckResult(
        "pipeline_tables_p",
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        "; ".join(str(p) for s in states for p in s.problems),
        fix="apply the migrations",
        tables=states,
    )


def test_the_per_table_result_comes_from_the_table_state_not_from_text() -> None:
    # A problem of default.ab mentions "default.a" in its text; default.a itself is fine.
    good = TableState("default.a", ("id UInt32",), managed_by_migrations=True)
    bad = TableState(
        "default.ab",
        ("id UInt32",),
        managed_by_migrations=True,
        problems=(SchemaProblem("default.ab", ProblemKind.MISSING_COLUMN, "name"),),
    )
    by_name = {"pipeline_tables_p": _tables_check(good, bad)}

    a = table_result_of("default.a", ["p"], by_name)
    assert a.status is CheckStatus.PASSED, a.summary
    assert a.tables == (good,)

    ab = table_result_of("default.ab", ["p"], by_name)
    assert ab.status is CheckStatus.FAILED
    assert ab.summary == "default.ab: column name is missing"
    assert ab.fix == "apply the migrations"
    assert ab.tables[0].problems[0].kind is ProblemKind.MISSING_COLUMN


def test_a_table_check_that_could_not_look_fails_each_table_with_its_error() -> None:
    error = CheckResult("pipeline_tables_p", CheckStatus.FAILED, "OperationalError: refused")
    result = table_result_of("default.a", ["p"], {"pipeline_tables_p": error})
    assert (result.status, result.summary) == (CheckStatus.FAILED, "OperationalError: refused")
    assert table_result_of("default.a", ["q"], {}).summary == "the table check did not run"


def test_a_table_only_the_pipeline_creates_is_a_warning_until_it_exists() -> None:
    missing = TableState("default.a", (), managed_by_migrations=False)
    result = table_result_of("default.a", ["p"], {"pipeline_tables_p": _tables_check(missing)})
    assert result.status is CheckStatus.WARNING
    assert "not created yet" in result.summary
