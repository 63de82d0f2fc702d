"""Discovery against the stand-in: databases, tables, fields, look-up by name."""
# ruff: noqa: F401, F811 - the stand-in fixtures are imported by name, then requested by name

from __future__ import annotations

import pytest

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.metabase.discovery import (
    catalog_markdown,
    fields_markdown,
    find_database,
    list_databases,
    list_tables,
    resolve_table,
    table_metadata,
)
from dataproc_dagster_tests.servers.metabase_fixtures import StandinSetup, metabase


def test_list_databases(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        databases = list_databases(client)
    assert [(d.id, d.name, d.engine) for d in databases] == [
        (metabase.sales_id, "Sales", "h2"),
        (databases[1].id, "Ops", "sqlite"),
    ]
    assert all(d.native_sql for d in databases)


def test_list_tables_with_schema_visibility_and_fields(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        tables = list_tables(client, metabase.sales_id)
        with_hidden = list_tables(client, metabase.sales_id, include_hidden=True)
    names = [(t.schema, t.name) for t in tables]
    assert names == [
        ("ANALYTICS", "ORDERS"),
        ("PUBLIC", "EMPTY"),
        ("PUBLIC", "ORDERS"),
        ("PUBLIC", "PEOPLE"),
    ]
    assert ("PUBLIC", "AUDIT_LOG") in [(t.schema, t.name) for t in with_hidden]
    hidden = next(t for t in with_hidden if t.name == "AUDIT_LOG")
    assert hidden.visibility == "hidden"
    orders = next(t for t in tables if t.id == metabase.orders_id)
    assert orders.rows == 5000
    assert [(f.name, f.base_type) for f in orders.fields][:2] == [
        ("id", "type/BigInteger"),
        ("customer", "type/Text"),
    ]
    assert orders.pk is not None and orders.pk.name == "id"
    people = next(t for t in tables if t.name == "PEOPLE")
    assert "password_hash" not in [f.name for f in people.fields]  # sensitive


def test_table_without_schema_and_table_metadata_by_id(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        table = table_metadata(client, metabase.types_id)
    assert table.schema is None and table.qualified == "types"
    assert table.db_name == "Ops"
    assert {f.name: f.base_type for f in table.fields}["big"] == "type/BigInteger"


def test_find_by_names(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        assert find_database(client, "sales").id == metabase.sales_id
        by_schema = resolve_table(
            client, database_name="Sales", schema="ANALYTICS", table_name="ORDERS"
        )
        assert by_schema.id == metabase.analytics_orders_id
        assert (
            resolve_table(client, database_id=metabase.sales_id, table_name="people").id
            == metabase.people_id
        )
        assert resolve_table(client, table_id=metabase.orders_id).name == "ORDERS"


def test_a_name_in_two_schemas_needs_the_schema(metabase: StandinSetup) -> None:
    with metabase.client() as client, pytest.raises(ConfigError) as caught:
        resolve_table(client, database_name="Sales", table_name="ORDERS")
    text = str(caught.value)
    assert "ANALYTICS.ORDERS" in text and "PUBLIC.ORDERS" in text and "set schema" in text


def test_unknown_names_list_what_exists(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        with pytest.raises(ConfigError, match=r"no Metabase database named 'Nope'.*'Sales'"):
            find_database(client, "Nope")
        with pytest.raises(ConfigError, match=r"no table 'PUBLIC.ORDER'.*similar: .*ORDERS"):
            resolve_table(
                client, database_id=metabase.sales_id, schema="PUBLIC", table_name="ORDER"
            )
        with pytest.raises(SourceError, match="Not found"):
            resolve_table(client, table_id=4242)
        with pytest.raises(ConfigError, match="belongs to database"):
            resolve_table(client, database_id=99, table_id=metabase.orders_id)


def test_markdown_catalog_lists_every_table(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        databases = list_databases(client)
        tables = {d.id: list_tables(client, d.id) for d in databases}
        orders = table_metadata(client, metabase.orders_id)
    text = catalog_markdown(databases, tables)
    assert (
        f"| Sales | {metabase.sales_id} | h2 | PUBLIC | ORDERS | {metabase.orders_id} | 5000 |"
        in text
    )
    assert "| Ops |" in text and "| types |" in text
    fields = fields_markdown(orders)
    assert "| created_at |" in fields and "Nullable(DateTime64(3, 'UTC'))" in fields
