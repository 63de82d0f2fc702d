"""What a ClickHouse server makes possible: runs at once, steps without chDB, cluster DDL."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clickhouse_connect.driver.client import Client
from dagster import DagsterEventType, DagsterInstance, execute_job
from dagster import reconstructable as make_reconstructable

from dataproc_dagster import create_clickhouse_loader
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.clickhouse.server import LocalClickHouseServer
from dataproc_dagster.core.errors import SourceError
from dataproc_dagster.core.settings import get_settings, load_settings
from dataproc_dagster.migrations.files import render
from dataproc_dagster.migrations.state import StateTable
from dataproc_dagster.pipeline.pools import apply_pool_limit, clickhouse_pool_limit
from dataproc_dagster.pipeline.steps import CLICKHOUSE_POOL
from dataproc_dagster_tests.conftest import SERVER_PASSWORD, SERVER_USER
from dataproc_dagster_tests.helpers import server_jobs
from dataproc_dagster_tests.helpers.pipelines import failure_message, run_pipeline

pytestmark = pytest.mark.server


def _step_window(instance: DagsterInstance, run_id: str, step: str) -> tuple[float, float]:
    times: dict[DagsterEventType, float] = {}
    for entry in instance.all_logs(run_id):
        kind = entry.dagster_event_type
        # Step keys of asset jobs carry a prefix ("<pipeline>__etl.<step>").
        if (entry.step_key or "").endswith(step) and kind in (
            DagsterEventType.STEP_START,
            DagsterEventType.STEP_SUCCESS,
        ):
            times[kind] = entry.timestamp
    return times[DagsterEventType.STEP_START], times[DagsterEventType.STEP_SUCCESS]


def test_four_runs_of_different_pipelines_overlap_on_the_server(
    server_clickhouse: ClickHouseResource, tmp_path: Path
) -> None:
    (tmp_path / "home").mkdir()
    results: dict[str, Any] = {}

    def launch(factory: Any) -> None:
        with execute_job(make_reconstructable(factory), instance=instance) as result:
            results[factory.__name__] = (result.success, result.run_id)

    with DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        assert apply_pool_limit(instance, get_settings()) == 4
        threads = [threading.Thread(target=launch, args=(job,)) for job in server_jobs.JOBS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert {name: ok for name, (ok, _) in results.items()} == {
            job.__name__: True for job in server_jobs.JOBS
        }
        records = {
            name: instance.get_run_record_by_id(run_id) for name, (_, run_id) in results.items()
        }
        runs = [(r.start_time, r.end_time) for r in records.values() if r is not None]
        # One moment when all four runs were in progress...
        assert len(runs) == 4 and max(s for s, _ in runs) < min(e for _, e in runs)
        # ...and when all four extract steps, which hold the "clickhouse" pool, ran queries at
        # once: no file lock and no pool limit of 1 serialised them.
        windows = [
            _step_window(instance, run_id, f"{name}__extract")
            for name, (_, run_id) in results.items()
        ]
        assert max(s for s, _ in windows) < min(e for _, e in windows)
    for name in results:
        assert server_clickhouse.query_rows(f"SELECT count() FROM {name}") == [(server_jobs.ROWS,)]


def test_pool_limit_comes_from_the_settings(tmp_path: Path) -> None:
    assert clickhouse_pool_limit(load_settings(clickhouse_url=f"chdb://{tmp_path}")) == 1
    assert clickhouse_pool_limit(load_settings(clickhouse_url="http://127.0.0.1:8123")) == 4
    configured = load_settings(clickhouse_url="https://ch:8443", clickhouse_pool_limit=12)
    assert clickhouse_pool_limit(configured) == 12
    (tmp_path / "home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        apply_pool_limit(instance, configured)
        info = instance.event_log_storage.get_concurrency_info(CLICKHOUSE_POOL)
        assert info.slot_count == 12


def test_steps_against_a_server_do_not_import_chdb(
    server_clickhouse: ClickHouseResource, tmp_path: Path
) -> None:
    (tmp_path / "home").mkdir()
    with (
        DagsterInstance.local_temp(str(tmp_path / "home")) as instance,
        execute_job(make_reconstructable(server_jobs.no_chdb_job), instance=instance) as result,
    ):
        assert result.success
    assert server_clickhouse.query_rows("SELECT count(), max(chdb_loaded) FROM no_chdb") == [
        (1000, 0)
    ]


class _RecordingClient:
    """Keeps the text of every command; forwards them to a real client when ``forward``."""

    def __init__(self, client: Client, *, forward: bool) -> None:
        self.client = client
        self.forward = forward
        self.commands: list[str] = []

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.commands.append(" ".join(sql.split()))
        return self.client.command(sql, *args, **kwargs) if self.forward else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_cluster_placeholder_and_state_table_ddl_on_cluster(
    server_clickhouse: ClickHouseResource,
) -> None:
    sql = "CREATE TABLE {database}.events {cluster} (id UInt64) ENGINE = MergeTree ORDER BY id"
    assert render(sql, database="analytics", cluster="main") == (
        "CREATE TABLE `analytics`.events ON CLUSTER `main` (id UInt64) "
        "ENGINE = MergeTree ORDER BY id"
    )
    assert render(sql, database="analytics") == (
        "CREATE TABLE `analytics`.events  (id UInt64) ENGINE = MergeTree ORDER BY id"
    )
    with server_clickhouse.get_client() as client:
        recorder = _RecordingClient(client, forward=False)
        StateTable(recorder, database="ops", table="migrations", cluster="main").ensure()  # type: ignore[arg-type]
        database_ddl, table_ddl = recorder.commands
        assert database_ddl == "CREATE DATABASE IF NOT EXISTS `ops` ON CLUSTER `main`"
        assert table_ddl.startswith(
            "CREATE TABLE IF NOT EXISTS `ops`.`migrations` ON CLUSTER `main` ("
        )
        assert table_ddl.endswith(
            "ENGINE = ReplicatedMergeTree ORDER BY (kind, version, recorded_at)"
        )
        # ON CLUSTER needs ClickHouse Keeper and a cluster definition, which the local server
        # has not: it refuses the statement, naming the cluster.
        with pytest.raises(Exception, match="main"):
            client.command(database_ddl)
        # Without a cluster the same DDL runs on the server.
        StateTable(client, database="ops", table="migrations").ensure()
    assert server_clickhouse.query_rows(
        "SELECT engine FROM system.tables WHERE database = 'ops' AND name = 'migrations'"
    ) == [("MergeTree",)]


def _connect_error(resource: ClickHouseResource) -> str:
    with pytest.raises(SourceError) as raised, resource.get_client():
        pass
    return str(raised.value)


def test_unreachable_server_names_the_url_and_how_to_start_one() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resource = ClickHouseResource(
        url=f"http://127.0.0.1:{port}", password="s3cret-pass", connect_timeout=2
    )
    message = _connect_error(resource)
    assert f"ClickHouse server http://127.0.0.1:{port}" in message
    assert "./run.sh clickhouse start" in message and "s3cret-pass" not in message


def test_wrong_user_or_password_on_the_server_names_the_settings(
    server_clickhouse: ClickHouseResource,
) -> None:
    url = server_clickhouse.url
    for user, password in (("nobody", "s3cret-pass"), (SERVER_USER, "s3cret-pass")):
        resource = ClickHouseResource(url=url, user=user, password=password)
        message = _connect_error(resource)
        assert url.removeprefix("http://") in message
        assert f"CLICKHOUSE_USER (now '{user}') and CLICKHOUSE_PASSWORD" in message
        assert "s3cret-pass" not in message
    # The same user with its password gets in and writes.
    right = ClickHouseResource(url=url, user=SERVER_USER, password=SERVER_PASSWORD)
    right.command("CREATE TABLE default.by_etl (x UInt8) ENGINE = MergeTree ORDER BY x")
    right.command("INSERT INTO default.by_etl VALUES (1)")
    assert right.query_rows("SELECT currentUser(), count() FROM default.by_etl") == [
        (SERVER_USER, 1)
    ]


def test_unknown_database_on_the_server_says_to_create_it(
    server_clickhouse: ClickHouseResource,
) -> None:
    resource = ClickHouseResource(url=server_clickhouse.url, database="no_such_db")
    message = _connect_error(resource)
    assert "(database no_such_db)" in message
    assert "CREATE DATABASE no_such_db" in message and "CLICKHOUSE_DATABASE" in message


def test_a_server_dying_mid_load_fails_naming_the_url_and_keeps_the_target(
    data_dir: Path, tmp_path: Path
) -> None:
    server = LocalClickHouseServer(tmp_path / "dying")
    url = server.start()
    try:
        resource = ClickHouseResource(url=url, connect_timeout=2)
        resource.command("CREATE TABLE t (id Int64) ENGINE = MergeTree ORDER BY id")
        resource.command("INSERT INTO t VALUES (1), (2)")

        def stop_after_first_chunk(index: int, rows: int) -> None:
            if index == 0:
                server.stop()

        loader = create_clickhouse_loader(
            "t", mode="replace", order_by=["id"], on_chunk=stop_after_first_chunk
        )
        frames = [pd.DataFrame({"id": range(i * 100, (i + 1) * 100)}) for i in range(3)]
        result = run_pipeline(resource, frames, loader, chunk_rows=100)
        assert not result.success
        message = failure_message(result)
        assert f"ClickHouse server {url}" in message and "stopped answering" in message
        assert "./run.sh clickhouse status" in message
        # The server comes back on the same folder: the target still has its two rows.
        server = LocalClickHouseServer(tmp_path / "dying")
        url = server.start()
        assert ClickHouseResource(url=url).query_rows("SELECT count() FROM t") == [(2,)]
    finally:
        server.stop()


def test_https_against_a_plain_http_port_says_which_scheme_to_use(
    server_clickhouse: ClickHouseResource,
) -> None:
    tls_url = server_clickhouse.url.replace("http://", "https://")
    message = _connect_error(ClickHouseResource(url=tls_url, connect_timeout=5))
    assert f"ClickHouse server {tls_url}" in message
    assert (
        "use https:// for the server's TLS port" in message and "http:// for its plain" in message
    )


def test_loads_of_one_table_share_a_pool_and_never_interleave(
    server_clickhouse: ClickHouseResource, tmp_path: Path
) -> None:
    """A full replace and an append of the same table, launched together, run one after another."""
    jobs = (server_jobs.replace_shared, server_jobs.append_shared)
    pools = {
        node.pool for job in jobs for node in job().all_node_defs if node.name.endswith("__load")
    }
    assert pools == {"clickhouse/default.shared_table"}
    assert {getattr(n, "pool", None) for n in server_jobs.copy_a().all_node_defs} >= {
        "clickhouse/default.copy_a"
    }
    (tmp_path / "home").mkdir()
    results: dict[str, Any] = {}

    def launch(factory: Any) -> None:
        with execute_job(make_reconstructable(factory), instance=instance) as result:
            results[factory.__name__] = (result.success, result.run_id)

    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with DagsterInstance.local_temp(str(tmp_path / "home"), overrides=overrides) as instance:
        threads = [threading.Thread(target=launch, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert all(ok for ok, _ in results.values()) and len(results) == 2
        windows = sorted(
            _step_window(instance, run_id, f"{name.split('_')[0]}_shared__load")
            for name, (_, run_id) in results.items()
        )
    assert windows[0][1] <= windows[1][0], windows  # the second load started after the first
    rows = server_clickhouse.query_rows("SELECT count() FROM shared_table")
    assert rows[0][0] in (300, 600)  # replace then append, or append then replace
