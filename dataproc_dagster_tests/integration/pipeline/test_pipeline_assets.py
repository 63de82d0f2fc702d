"""Pipelines as assets: the asset graph (snapshot), checks run with every load and block the SQL
steps, generic jobs report onto the pipelines' assets, the migrations CLI records the schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import AssetCheckKey, AssetKey, DagsterInstance, instance_for_test

from dataproc_dagster import (
    create_clickhouse_loader,
    create_etl_pipeline,
    create_file_extractor,
    create_sql_step,
)
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.pipeline.assets import source_keys, tables_read
from dataproc_dagster.sources.http.extractor import create_http_extractor
from dataproc_dagster.sources.metabase.extractor import create_metabase_extractor
from dataproc_dagster_tests.helpers.cli import REPO, cli_env
from dataproc_dagster_tests.helpers.pipelines import frames_extractor

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
PENGUINS = AssetKey(["clickhouse", "default", "penguins"])
STATS = AssetKey(["clickhouse", "default", "penguin_species_stats"])


def asset_graph_snapshot() -> dict[str, Any]:
    """Keys, deps, groups, kinds, checks (blocking or not) and job membership of the code
    location, in a stable JSON-friendly shape."""
    from dataproc_dagster.definitions import defs

    repo = defs.get_repository_def()
    graph = repo.asset_graph
    jobs: dict[str, list[str]] = {}
    for name in sorted(repo.job_names):
        if name.startswith("__"):
            continue
        layer = repo.get_job(name).asset_layer
        members = [k.to_user_string() for k in layer.selected_asset_keys]
        members += [
            f"{c.asset_key.to_user_string()}:{c.name}"
            for data in layer.data
            for c in data.assets_def.check_keys
        ]
        for member in members:
            jobs.setdefault(member, []).append(name)
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        user = key.to_user_string()
        checks = {}
        for check_key in sorted(node.check_keys, key=lambda c: c.name):
            spec = graph.get_check_spec(check_key)
            checks[check_key.name] = {
                "blocking": spec.blocking,
                "jobs": sorted(jobs.get(f"{user}:{check_key.name}", [])),
            }
        assets[user] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "materializable": node.is_materializable,
            "jobs": sorted(jobs.get(user, [])),
            "checks": checks,
        }
    return assets


def test_asset_graph_matches_the_snapshot() -> None:
    """Regenerate with UPDATE_SNAPSHOTS=1 after an intended change, and review the diff."""
    current = asset_graph_snapshot()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())
    # What the snapshot must say, spelled out: the lineage and the checks run with every load.
    assert current["clickhouse/default/penguins"]["deps"] == ["file/penguins.csv"]
    assert current["clickhouse/default/penguin_species_stats"]["deps"] == [
        "clickhouse/default/penguins"
    ]
    assert current["clickhouse/default/penguins"]["jobs"] == ["penguins"]
    checks = current["clickhouse/default/penguins"]["checks"]
    assert checks["columns_match"] == {"blocking": True, "jobs": ["penguins"]}
    assert checks["rows_loaded"]["jobs"] == ["penguins"]
    assert checks["freshness_check"]["jobs"] == ["penguins"]
    assert checks["target_table"]["jobs"] == ["integrity_check"]
    assert current["file/penguins.csv"]["materializable"] is False


def test_source_keys_and_sql_lineage() -> None:
    assert source_keys(
        create_http_extractor("https://api.example.com/v1/issues?state=open"), "default"
    ) == [AssetKey(["http", "api.example.com", "v1", "issues"])]
    # The port is no part of the key: the same API on another port is the same source.
    for port in (33997, 41000):
        assert source_keys(create_http_extractor(f"http://127.0.0.1:{port}/page"), "default") == [
            AssetKey(["http", "127.0.0.1", "page"])
        ]
    assert source_keys(
        create_metabase_extractor(database_name="Sales", schema="PUBLIC", table_name="ORDERS"),
        "default",
    ) == [AssetKey(["metabase", "Sales", "PUBLIC.ORDERS"])]
    assert source_keys(create_file_extractor("/data/in/rows.csv"), "default") == [
        AssetKey(["file", "rows.csv"])
    ]
    select = (
        "WITH recent AS (SELECT * FROM raw.events) SELECT * FROM recent "
        "JOIN users u ON u.id = recent.user_id, numbers(3) LEFT JOIN system.one ON 1"
    )
    assert tables_read(select, "default") == ["raw.events", "default.users"]


def test_a_failing_blocking_check_stops_the_sql_step(clickhouse: ClickHouseResource) -> None:
    """Duplicate keys (``FINAL`` cannot merge rows whose sorting key differs) fail the
    blocking ``unique_keys`` check, so the SQL asset downstream is not materialized."""
    clickhouse.command(
        "CREATE TABLE default.dup_events (id Int64, v Int64, _version UInt64) "
        "ENGINE = ReplacingMergeTree(_version) ORDER BY (id, v)"
    )
    pipeline = create_etl_pipeline(
        "dups",
        extractor=frames_extractor([pd.DataFrame({"id": [1, 1, 2], "v": [1, 2, 3]})]),
        loader=create_clickhouse_loader("dup_events", mode="upsert", key_columns=["id"]),
        sql_steps=[create_sql_step("SELECT count() AS n FROM dup_events", "dup_counts")],
    )
    result = pipeline.execute_in_process(resources={"clickhouse": clickhouse}, raise_on_error=False)

    assert not result.success
    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert evaluations["unique_keys"].passed is False
    assert evaluations["unique_keys"].description == "1 key(s) present more than once"
    assert evaluations["rows_loaded"].passed is True
    assert evaluations["columns_match"].passed is True
    materialized = [e.asset_key for e in result.get_asset_materialization_events()]
    assert materialized == [AssetKey(["clickhouse", "default", "dup_events"])]
    assert clickhouse.query_rows("SELECT count() FROM system.tables WHERE name = 'dup_counts'") == [
        (0,)
    ]


def test_empty_load_fails_rows_loaded_unless_allowed(clickhouse: ClickHouseResource) -> None:
    empty = pd.DataFrame({"id": pd.Series([], dtype="int64")})
    outcomes = {}
    for allow in (False, True):
        pipeline = create_etl_pipeline(
            f"empty_{int(allow)}",
            extractor=frames_extractor([empty]),
            loader=create_clickhouse_loader(f"empty_{int(allow)}", order_by=["id"]),
            allow_empty_loads=allow,
        )
        clickhouse.command(
            f"CREATE TABLE default.empty_{int(allow)} (id Int64) ENGINE = MergeTree ORDER BY id"
        )
        result = pipeline.execute_in_process(resources={"clickhouse": clickhouse})
        [rows] = [
            e.asset_check_evaluation_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.asset_check_evaluation_data.check_name == "rows_loaded"
        ]
        outcomes[allow] = (result.success, rows.passed, rows.description)
    # Non-blocking: the run succeeds, the check says what happened and how to allow it.
    assert outcomes[False] == (
        True,
        False,
        "0 row(s) loaded; pass allow_empty_loads=True when an empty load is expected",
    )
    assert outcomes[True] == (True, True, "0 row(s) loaded")


def test_generic_load_lands_on_the_pipeline_asset(
    clickhouse: ClickHouseResource, tmp_path: Path
) -> None:
    """A job whose target comes from run config keeps its op-job run config and reports the
    table it wrote as ``clickhouse/<db>/<table>``: the penguins asset when it writes there."""
    csv = tmp_path / "rows.csv"
    csv.write_text("species,island,year\nAdelie,Dream,2008\n")
    generic = create_etl_pipeline(
        "generic_copy",
        extractor=create_file_extractor(str(csv)),
        loader=create_clickhouse_loader(None),
    )
    assert generic.assets == ()
    with instance_for_test() as instance:
        result = generic.execute_in_process(
            resources={"clickhouse": clickhouse},
            instance=instance,
            run_config={
                "ops": {"generic_copy__load": {"config": {"table": "penguins", "mode": "append"}}}
            },
        )
        assert result.success
        event = instance.get_latest_materialization_event(PENGUINS)
    assert event is not None and event.run_id == result.run_id
    assert event.asset_materialization is not None
    assert event.asset_materialization.metadata["dagster/row_count"].value == 1


def test_migrations_cli_records_the_schema_in_the_instance(data_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    done = subprocess.run(
        [sys.executable, "-m", "dataproc_dagster.cli.migrations", "up"],
        cwd=REPO,
        env=cli_env(data_dir, home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "recorded clickhouse/schema in the Dagster instance: 5/5 checks passed" in done.stderr
    schema = AssetKey(["clickhouse", "schema"])
    with DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(schema)
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.metadata["pending_count"].value == 0
        for name in (
            "no_pending_migrations",
            "no_failed_migrations",
            "no_checksum_mismatch",
            "no_missing_migration_files",
            "tables_match_migrations",
        ):
            [record] = instance.event_log_storage.get_asset_check_execution_history(
                AssetCheckKey(schema, name), limit=1
            )
            assert record.status.value == "SUCCEEDED", name
