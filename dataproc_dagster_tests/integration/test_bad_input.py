"""Bad configuration and bad sources fail with messages naming pipeline, step, source and fix."""

from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd
import pytest

from dataproc_dagster import (
    create_clickhouse_extractor,
    create_clickhouse_loader,
    create_etl_pipeline,
    create_sql_step,
)
from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster_tests.helpers.pipelines import failure_message, run_pipeline
from dataproc_dagster_tests.servers.refusing_clickhouse import refusing_clickhouse


def _run(clickhouse: ClickHouseResource, pipeline: object) -> object:
    return pipeline.execute_in_process(  # type: ignore[attr-defined]
        resources={"clickhouse": clickhouse}, raise_on_error=False
    )


def test_sql_error_in_extractor_names_pipeline_step_and_fix(clickhouse: ClickHouseResource) -> None:
    clickhouse.command("CREATE TABLE target (id Int64) ENGINE = MergeTree ORDER BY id")
    clickhouse.command("INSERT INTO target VALUES (1)")
    pipeline = create_etl_pipeline(
        "broken_query",
        extractor=create_clickhouse_extractor("SELECT id FROM no_such_table"),
        loader=create_clickhouse_loader("target", mode="replace"),
    )
    result = _run(clickhouse, pipeline)
    assert not result.success  # type: ignore[attr-defined]
    message = failure_message(result)  # type: ignore[arg-type]
    assert "[pipeline broken_query]" in message
    assert "broken_query__extract" in message
    assert "no_such_table" in message and "Fix: correct the SQL" in message
    assert clickhouse.query_rows("SELECT id FROM target") == [(1,)]


def test_extractor_binds_parameters(clickhouse: ClickHouseResource) -> None:
    clickhouse.command("CREATE TABLE src (id Int64, name String) ENGINE = MergeTree ORDER BY id")
    clickhouse.command(
        "INSERT INTO src SELECT number, concat('n', toString(number)) FROM numbers(100)"
    )
    pipeline = create_etl_pipeline(
        "copy_src",
        extractor=create_clickhouse_extractor(
            "SELECT * FROM src WHERE id >= {low:Int64} AND name != {skip:String}",
            {"low": 90, "skip": "n95'; DROP TABLE src; --"},
        ),
        loader=create_clickhouse_loader("dst", order_by=["id"]),
    )
    assert _run(clickhouse, pipeline).success  # type: ignore[attr-defined]
    assert clickhouse.query_rows("SELECT count(), min(id) FROM dst") == [(10, 90)]
    assert clickhouse.query_rows("SELECT count() FROM src") == [(100,)]


def test_wrong_url_scheme_is_refused_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataproc_dagster.core.settings import load_settings

    monkeypatch.setenv("CLICKHOUSE_URL", "mysql://localhost:3306")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "CLICKHOUSE_URL" in str(raised.value) and "chdb:///" in str(raised.value)


def test_wrong_url_scheme_in_the_resource_names_the_fix() -> None:
    resource = ClickHouseResource(url="ftp://example")
    with pytest.raises(ConfigError, match="chdb:///path"), resource.get_client():
        pass


def test_unreachable_server_fails_the_step_without_the_password(
    clickhouse: ClickHouseResource,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ClickHouseResource(
        url=f"http://127.0.0.1:{port}", password="s3cret-pass", connect_timeout=2
    )
    result = run_pipeline(server, [pd.DataFrame({"id": [1]})], create_clickhouse_loader("t"))
    assert not result.success
    message = failure_message(result)
    assert "cannot reach ClickHouse" in message and f"127.0.0.1:{port}" in message
    assert "CLICKHOUSE_URL" in message
    assert "s3cret-pass" not in message


def test_sql_step_rebuilds_a_table_atomically(clickhouse: ClickHouseResource) -> None:
    frames = [pd.DataFrame({"city": ["a", "b", "a", "c"], "amount": [1.0, 2.0, 3.0, 4.0]})]
    step = create_sql_step(
        "SELECT city, sum(amount) AS total FROM sales GROUP BY city",
        "sales_by_city",
        order_by=["city"],
    )
    result = run_pipeline(
        clickhouse, frames, create_clickhouse_loader("sales", mode="replace"), sql_steps=[step]
    )
    assert result.success
    assert clickhouse.query_rows("SELECT city, total FROM sales_by_city ORDER BY city") == [
        ("a", 4.0),
        ("b", 2.0),
        ("c", 4.0),
    ]
    materialized = result.asset_materializations_for_node("test_pipeline__sql_sales_by_city_1")
    assert materialized[0].asset_key.path == ["clickhouse", "default", "sales_by_city"]

    broken = create_sql_step("SELECT nope FROM sales", "sales_by_city")
    result = run_pipeline(
        clickhouse, frames, create_clickhouse_loader("sales", mode="replace"), sql_steps=[broken]
    )
    assert not result.success
    assert "sales_by_city is unchanged" in failure_message(result)
    assert clickhouse.query_rows("SELECT count() FROM sales_by_city") == [(3,)]


def test_elt_only_pipeline(clickhouse: ClickHouseResource) -> None:
    clickhouse.command("CREATE TABLE raw (x Int64) ENGINE = MergeTree ORDER BY x")
    clickhouse.command("INSERT INTO raw SELECT number FROM numbers(10)")
    pipeline = create_etl_pipeline(
        "elt_only", sql_steps=[create_sql_step("SELECT x * 2 AS y FROM raw", "doubled")]
    )
    assert _run(clickhouse, pipeline).success  # type: ignore[attr-defined]
    assert clickhouse.query_rows("SELECT sum(y) FROM doubled") == [(90,)]


def test_password_from_dotenv_reaches_the_server_but_no_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resource config holds no password; it is read from .env when a step connects."""
    with refusing_clickhouse() as (address, logins):
        try:
            monkeypatch.chdir(tmp_path)
            (tmp_path / ".env").write_text(
                f"CLICKHOUSE_URL=http://{address}\nCLICKHOUSE_PASSWORD=dotenv-pw-42\n"
            )
            monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
            monkeypatch.delenv("CLICKHOUSE_PASSWORD", raising=False)
            get_settings.cache_clear()
            resource = ClickHouseResource.from_settings(get_settings())
            assert resource.password == ""  # nothing secret in the config the UI shows
            result = run_pipeline(
                resource, [pd.DataFrame({"id": [1]})], create_clickhouse_loader("t")
            )
            assert not result.success
            message = failure_message(result)
            assert "dotenv-pw-42" not in message
            assert "default:dotenv-pw-42" in logins  # the .env password was used to log in
        finally:
            get_settings.cache_clear()


def test_secret_in_a_user_exception_never_reaches_the_event_log(
    clickhouse: ClickHouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import DagsterInstance
    from dagster._serdes import serialize_value

    from dataproc_dagster import create_extractor

    secret = "tok-live-8f3a9c1d77"
    monkeypatch.setenv("SHOP_API_TOKEN", secret)

    def careless() -> object:
        raise RuntimeError(f"GET https://shop.example/api?token={secret} answered 500")

    pipeline = create_etl_pipeline(
        "careless", extractor=create_extractor(careless), loader=create_clickhouse_loader("t")
    )
    with DagsterInstance.ephemeral() as instance:
        result = pipeline.execute_in_process(
            resources={"clickhouse": clickhouse}, instance=instance, raise_on_error=False
        )
        assert not result.success
        records = instance.all_logs(result.run_id)
        text = "\n".join(serialize_value(record) for record in records)
    assert "careless__extract failed: RuntimeError" in text
    assert secret not in text
