"""``create_metabase_extractor``: any table of any Metabase database, or native SQL.

Example (a whole pipeline module's source in three lines)::

    from dataproc_dagster.sources.metabase.extractor import create_metabase_extractor

    extractor = create_metabase_extractor(
        database_name="Sales", schema="PUBLIC", table_name="ORDERS"
    )
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from dataproc_dagster.core.errors import ConfigError, DataprocError
from dataproc_dagster.pipeline.config_types import StepConfig, default_of
from dataproc_dagster.pipeline.contracts import StepContext
from dataproc_dagster.pipeline.window import render_window, window_fields_of
from dataproc_dagster.sources.metabase.discovery import find_database, get_database, resolve_table
from dataproc_dagster.sources.metabase.native_reader import read_native
from dataproc_dagster.sources.metabase.paging import (
    ABSOLUTE_MAX,
    DEFAULT_PAGE_SIZE,
    ReadMethod,
    ReadStats,
    check_method,
)
from dataproc_dagster.sources.metabase.table_reader import read_table


@dataclass
class MetabaseExtractor:
    """Reads a Metabase table or native query; see :func:`create_metabase_extractor`."""

    database_id: int | None = None
    table_id: int | None = None
    native_query: str | None = None
    limit: int | None = None
    database_name: str | None = None
    schema: str | None = None
    table_name: str | None = None
    order_by: tuple[str, ...] | str | None = None
    columns: tuple[str, ...] = ()
    method: ReadMethod | str = ReadMethod.DATASET
    page_size: int = DEFAULT_PAGE_SIZE
    resource_key: str = "metabase"
    from_config: bool = False
    # Native SQL of a partitioned pipeline: Metabase variables ({{start}}) filled from the
    # window, name -> template ("{start:%Y-%m-%d}"), sent as parameters, never pasted.
    window_parameters: Mapping[str, str] | None = None
    kind: str = field(default="metabase", init=False)
    required_resource_keys: frozenset[str] = field(default=frozenset(), init=False)
    config_schema: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.required_resource_keys = frozenset({self.resource_key})
        self.config_schema = MetabaseSourceConfig if self.from_config else None

    def describe(self) -> str:
        """The source, without credentials."""
        if self.from_config:
            return "Metabase source from run config"
        if self.native_query is not None:
            db = self.database_name or f"database {self.database_id}"
            sql = " ".join(self.native_query.split())
            return f"Metabase native SQL on {db}: {sql[:80]}{'...' if len(sql) > 80 else ''}"
        if self.table_id is not None:
            return f"Metabase table {self.table_id}"
        db = self.database_name or f"database {self.database_id}"
        where = f"{self.schema}.{self.table_name}" if self.schema else self.table_name
        return f"Metabase {db}: table {where}"

    def with_config(self, config: MetabaseSourceConfig | Mapping[str, Any]) -> MetabaseExtractor:
        """A copy with the values of run ``config`` (its model, or the same keys), validated."""
        if isinstance(config, MetabaseSourceConfig):
            config = config.model_dump(by_alias=True)
        known = {f.name for f in fields(self) if f.init}
        values: dict[str, Any] = {k: v for k, v in config.items() if k in known}
        if isinstance(values.get("order_by"), str):
            values["order_by"] = values["order_by"] or None
        values["columns"] = tuple(values.get("columns") or ())
        merged = replace(self, from_config=False, **values)
        merged.validate()
        return merged

    def validate(self) -> None:
        """Check that the options name exactly one source; raise :class:`ConfigError` if not."""
        where = "Metabase extractor"
        by_table = self.table_id is not None or bool(self.table_name)
        by_sql = self.native_query is not None
        if by_table == by_sql:
            raise ConfigError(
                "give exactly one source: table_id, table_name (with database_id or "
                "database_name) or native_query (with database_id or database_name)",
                source=where,
                fix="e.g. create_metabase_extractor(database_id=1, table_id=10) or "
                "create_metabase_extractor(1, native_query='SELECT ...', order_by='id')",
            )
        if self.table_id is not None and self.table_name:
            raise ConfigError(
                "table_id and table_name both given", source=where, fix="give one of them"
            )
        needs_db = by_sql or (self.table_id is None)
        if needs_db and self.database_id is None and not self.database_name:
            raise ConfigError(
                "no database: native_query and table_name need database_id or database_name",
                source=where,
                fix="set database_id (see the metabase_catalog job) or database_name",
            )
        self.method = check_method(self.method, where)
        if self.limit is not None and self.limit < 0:
            raise ConfigError(f"limit {self.limit} is negative", source=where, fix="use >= 0")
        if not 0 < self.page_size <= ABSOLUTE_MAX:
            raise ConfigError(
                f"page_size {self.page_size} is out of range",
                source=where,
                fix=f"use 1..{ABSOLUTE_MAX}",
            )
        if by_sql and isinstance(self.order_by, tuple | list):
            raise ConfigError(
                "order_by of a native query is one SQL ORDER BY list (a string)",
                source=where,
                fix="e.g. order_by='id' or order_by='created_at, id'",
            )

    def extract(self, ctx: StepContext) -> Iterator[pd.DataFrame]:
        """Yield the rows page by page (DataFrames typed from Metabase's column types)."""
        config = ctx.config_model if ctx.config_model is not None else ctx.config
        spec = self.with_config(config) if self.from_config else self
        try:
            yield from spec._extract(ctx)
        except DataprocError as exc:
            raise exc.with_pipeline(ctx.pipeline) from exc.__cause__

    def _extract(self, ctx: StepContext) -> Iterator[pd.DataFrame]:
        resource = ctx.resource(self.resource_key)
        log = ctx.log
        stats = ReadStats(method=str(self.method), page_size=self.page_size)
        if self.limit == 0:
            return
        with resource.get_client(log=log.warning) as client:
            if self.native_query is not None:
                db = (
                    find_database(client, self.database_name)
                    if self.database_id is None and self.database_name
                    else get_database(client, int(self.database_id or 0))
                )
                label = f"database {db.id} ({db.name})"
                log.info(f"Metabase: native SQL on {label}, method {self.method}")
                order = self.order_by if isinstance(self.order_by, str) else None
                variables = None
                if self.window_parameters:
                    variables = render_window(
                        ctx.window,
                        self.window_parameters,
                        option="Metabase extractor window_parameters",
                    )
                    ctx.metadata["window_parameters"] = ", ".join(
                        f"{k}={v}" for k, v in variables.items()
                    )
                yield from read_native(
                    client,
                    db.id,
                    self.native_query,
                    limit=self.limit,
                    page_size=self.page_size,
                    order_by=order,
                    method=self.method,
                    database_label=label,
                    log=log.warning,
                    stats=stats,
                    variables=variables,
                )
            else:
                table = resolve_table(
                    client,
                    database_id=self.database_id,
                    table_id=self.table_id,
                    database_name=self.database_name,
                    schema=self.schema,
                    table_name=self.table_name,
                )
                label = (
                    f"database {table.db_id} ({table.db_name or '?'}), table "
                    f"{table.qualified} (id {table.id})"
                )
                log.info(f"Metabase: reading {label}, method {self.method}")
                yield from read_table(
                    client,
                    table,
                    limit=self.limit,
                    page_size=self.page_size,
                    columns=self.columns or None,
                    order_by=_split_order(self.order_by),
                    method=self.method,
                    database_label=label,
                    log=log.warning,
                    stats=stats,
                )
            log.info(
                f"Metabase: {stats.rows} rows in {stats.pages} pages, {stats.requests} requests, "
                f"{client.retries} retries ({stats.method}, page size {stats.page_size})"
            )
            ctx.metadata.update(
                {
                    "metabase_method": stats.method,
                    "metabase_pages": stats.pages,
                    "metabase_requests": stats.requests,
                    "metabase_retries": client.retries,
                }
            )


ReadMethodName = Literal["dataset", "export"]


def _default(name: str) -> Any:
    return default_of(MetabaseExtractor, name)


class MetabaseSourceConfig(StepConfig):
    """Run config of a config-driven Metabase extract step (``metabase_to_clickhouse``).

    ``method`` is a ``Literal`` mirroring :class:`ReadMethod`; defaults are those of
    :class:`MetabaseExtractor`.
    """

    database_id: int | None = Field(
        default=_default("database_id"), description="Metabase database id"
    )
    database_name: str | None = Field(
        default=_default("database_name"), description="Database name as shown in Metabase"
    )
    # `schema` is a name pydantic models reserve; the run config key stays `schema`.
    schema_: str | None = Field(
        default=_default("schema"), alias="schema", description="Schema of table_name"
    )
    table_id: int | None = Field(default=_default("table_id"), description="Metabase table id")
    table_name: str | None = Field(
        default=_default("table_name"), description="Table name as synced"
    )
    native_query: str | None = Field(
        default=_default("native_query"), description="SQL to run instead"
    )
    limit: int | None = Field(default=_default("limit"), description="At most this many rows")
    order_by: str | None = Field(
        default=_default("order_by"),
        description="Table: comma-separated field names; SQL: an ORDER BY list making rows unique",
    )
    columns: list[str] = Field(
        default=list(_default("columns")),
        description="Table fields to read (default: all visible)",
    )
    method: ReadMethodName = Field(
        default=ReadMethod(_default("method")).value,
        description=f"{' or '.join(ReadMethod)} (default {ReadMethod(_default('method'))})",
    )
    page_size: int = Field(default=_default("page_size"), description="Rows per request")


def _split_order(order_by: Sequence[str] | str | None) -> list[str] | None:
    if order_by is None:
        return None
    if isinstance(order_by, str):
        return [part.strip() for part in order_by.split(",") if part.strip()] or None
    return list(order_by) or None


def create_metabase_extractor(
    database_id: int | None = None,
    table_id: int | None = None,
    native_query: str | None = None,
    limit: int | None = None,
    *,
    database_name: str | None = None,
    schema: str | None = None,
    table_name: str | None = None,
    order_by: Sequence[str] | str | None = None,
    columns: Sequence[str] = (),
    method: ReadMethod | str = ReadMethod.DATASET,
    page_size: int = DEFAULT_PAGE_SIZE,
    resource_key: str = "metabase",
    from_config: bool = False,
    window_parameters: Mapping[str, str] | None = None,
) -> MetabaseExtractor:
    """Create an extractor reading a Metabase table or native SQL query, whole and in order.

    Results past Metabase's 2000-row cap are read in pages (see docs/metabase-extractor.md).

    Args:
        database_id: Metabase database id (needed for ``native_query`` / ``table_name``
            unless ``database_name`` is given).
        table_id: Metabase table id.
        native_query: SQL to run on the database instead of reading a table.
        limit: At most this many rows (default: all).
        database_name: Database by its name in Metabase.
        schema: Schema of ``table_name`` (needed when the name is in several schemas).
        table_name: Table by name, as Metabase synced it.
        order_by: Table: field names giving a unique order (default: the primary key, else
            every column). Native SQL: an ORDER BY list making rows unique; without it the
            query runs as one request and fails if its result may have been capped.
        columns: Table fields to read (default: every field that is not sensitive/retired).
        method: ``dataset`` (``POST /api/dataset`` with raised caps, paged; default) or
            ``export`` (``POST /api/dataset/json``).
        page_size: Rows per request (1..1,048,575).
        resource_key: Key of the
            :class:`~dataproc_dagster.sources.metabase.resource.MetabaseResource`.
        from_config: Take every option from the op's run config (generic jobs).
        window_parameters: Native SQL in a partitioned pipeline: Metabase variables filled
            from the partition window, e.g. ``{"start": "{start:%Y-%m-%d}"}`` for
            ``WHERE day >= {{start}}``; sent as query parameters, never pasted into the SQL.

    Raises:
        ConfigError: When the options do not name exactly one source.
    """
    extractor = MetabaseExtractor(
        database_id=database_id,
        table_id=table_id,
        native_query=native_query,
        limit=limit,
        database_name=database_name,
        schema=schema,
        table_name=table_name,
        order_by=order_by if isinstance(order_by, str) or order_by is None else tuple(order_by),
        columns=tuple(columns),
        method=method,
        page_size=page_size,
        resource_key=resource_key,
        from_config=from_config,
        window_parameters=dict(window_parameters) if window_parameters else None,
    )
    window_fields_of(window_parameters, option="Metabase extractor window_parameters")
    if window_parameters and native_query is None:
        raise ConfigError(
            "window_parameters apply to native_query only",
            source="Metabase extractor",
            fix="read the window with native SQL: WHERE day >= {{start}} AND day < {{end}}",
        )
    if not from_config:
        extractor.validate()
    return extractor
