"""Generic Metabase jobs: ``metabase_to_clickhouse`` (run config only) and ``metabase_catalog``.

``metabase_to_clickhouse`` copies one Metabase table (by id or by name) or native query into a
ClickHouse table; everything comes from run config, so it runs from the launchpad or
``dagster job execute -m dataproc_dagster -j metabase_to_clickhouse -c config.yaml``::

    ops:
      metabase_to_clickhouse__extract:
        config: {database_name: Sales, schema: PUBLIC, table_name: ORDERS}
      metabase_to_clickhouse__load:
        config: {table: analytics.orders, mode: replace}

``metabase_catalog`` lists databases, tables and (optionally) fields as Markdown metadata.
"""

from typing import Any

from dagster import MetadataValue, OpExecutionContext, Output, job, op
from pydantic import Field

from dataproc_dagster.loading.loader import create_clickhouse_loader
from dataproc_dagster.pipeline.config_types import StepConfig
from dataproc_dagster.pipeline.factory import create_etl_pipeline
from dataproc_dagster.pipeline.steps import pipeline_errors
from dataproc_dagster.sources.metabase.discovery import (
    MetabaseTable,
    catalog_markdown,
    fields_markdown,
    find_database,
    list_databases,
    list_tables,
    table_metadata,
)
from dataproc_dagster.sources.metabase.extractor import create_metabase_extractor

METABASE_TO_CLICKHOUSE = create_etl_pipeline(
    "metabase_to_clickhouse",
    create_metabase_extractor(from_config=True),
    create_clickhouse_loader(),
    description="Copy a Metabase table (by id or name) or native SQL query into a ClickHouse "
    "table; source, target and write mode come from run config.",
    tags={"dataproc/kind": "generic"},
)


class CatalogConfig(StepConfig):
    """Run config of ``metabase_catalog``: what to list (everything by default)."""

    database_id: int | None = Field(default=None, description="Only this database")
    database_name: str | None = Field(default=None, description="Only this database")
    table_id: int | None = Field(default=None, description="Fields of this table")
    include_fields: bool = Field(
        default=False, description="Fields of every listed table (can be long)"
    )
    include_hidden: bool = Field(default=False, description="Hidden tables as well")


@op(
    name="read_metabase_catalog",
    required_resource_keys={"metabase"},
    tags={"kind": "metabase"},
    description="List Metabase databases, tables and fields (Markdown metadata).",
)
def metabase_catalog_op(
    context: OpExecutionContext, config: CatalogConfig
) -> Output[dict[str, Any]]:
    """Read the catalog and report it as Markdown tables in the op's output metadata."""
    resource = context.resources.metabase
    with (
        pipeline_errors("metabase_catalog", "metabase_catalog", resource.describe()),
        resource.get_client(log=context.log.warning) as client,
    ):
        databases = list_databases(client)
        if config.database_id is not None:
            databases = [d for d in databases if d.id == config.database_id]
        elif config.database_name:
            databases = [find_database(client, config.database_name)]
        tables: dict[int, list[MetabaseTable]] = {}
        for db in databases:
            tables[db.id] = list_tables(client, db.id, include_hidden=config.include_hidden)
            context.log.info(
                f"Metabase database {db.id} {db.name!r} ({db.engine}): {len(tables[db.id])} tables"
            )
        metadata: dict[str, Any] = {
            "databases": len(databases),
            "tables": sum(len(t) for t in tables.values()),
            "catalog": MetadataValue.md(catalog_markdown(databases, tables)),
        }
        detailed: list[MetabaseTable] = []
        if config.table_id is not None:
            detailed.append(table_metadata(client, config.table_id))
        elif config.include_fields:
            detailed.extend(t for items in tables.values() for t in items)
        if detailed:
            metadata["fields"] = MetadataValue.md("\n\n".join(fields_markdown(t) for t in detailed))
    summary = {
        "databases": [{"id": d.id, "name": d.name, "engine": d.engine} for d in databases],
        "tables": [
            {"id": t.id, "db_id": t.db_id, "schema": t.schema, "name": t.name}
            for items in tables.values()
            for t in items
        ],
    }
    return Output(summary, metadata=metadata)


@job(
    name="metabase_catalog",
    description="List what Metabase holds: databases, tables (schema, name, id, visibility) and "
    "fields with their base_type and ClickHouse type.",
    tags={"dataproc/kind": "generic"},
)
def metabase_catalog() -> None:
    """The catalog job."""
    metabase_catalog_op()


JOBS = [METABASE_TO_CLICKHOUSE.job, metabase_catalog]
