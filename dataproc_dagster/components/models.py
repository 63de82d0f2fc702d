"""The blocks of an ``EtlPipelineComponent``'s ``defs.yaml``: strict pydantic models.

Each block mirrors an argument of ``create_etl_pipeline`` or of a building block's factory, and
turns itself into that building block (``to_extractor``, ``to_loader``, ...), so a YAML
pipeline is built by the same code as a Python one. The models forbid unknown keys and list
their choices as ``Literal`` values (the same aliases as the generic jobs' run config), so the
JSON schema ``dg check yaml`` validates against catches a typo in a field, a wrong mode or a
missing table before anything is loaded. Checks that need code (a table name, a paginator's
options, an import path) are validators: ``dg check defs`` reports them with the file, the line
and the field.

Secrets never appear in a block: an ``auth.secret`` is the *name* of an environment variable,
written ``'{{ env.NAME }}'``, and is read when the step runs (as ``bearer("NAME")`` does).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

from dagster import PartitionsDefinition
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dataproc_dagster.core.errors import ConfigError, DataprocError
from dataproc_dagster.core.redaction import is_secret_key
from dataproc_dagster.loading.config import DriftPolicyName, WriteModeName
from dataproc_dagster.loading.loader import ClickHouseLoader, create_clickhouse_loader
from dataproc_dagster.pipeline.contracts import Extractor
from dataproc_dagster.pipeline.partitions import (
    daily_partitions,
    hourly_partitions,
    monthly_partitions,
    static_partitions,
    weekly_partitions,
)
from dataproc_dagster.pipeline.sql_steps import SqlStep, create_sql_step
from dataproc_dagster.pipeline.transformers import Transformer, create_transformer
from dataproc_dagster.sources.clickhouse import create_clickhouse_extractor
from dataproc_dagster.sources.files import create_file_extractor
from dataproc_dagster.sources.http.auth import ApiKeyLocation, AuthKind, HttpAuth
from dataproc_dagster.sources.http.config import (
    ApiKeyLocationName,
    AuthKindName,
    ListModeName,
    PaginationStyleName,
)
from dataproc_dagster.sources.http.extractor import create_http_extractor
from dataproc_dagster.sources.http.incremental import Incremental
from dataproc_dagster.sources.http.pagination import Paginator, make_paginator
from dataproc_dagster.sources.http.retry import HttpRetryPolicy
from dataproc_dagster.sources.metabase.extractor import ReadMethodName, create_metabase_extractor

T = TypeVar("T")

# ``{{ env.NAME }}`` or ``{{ env('NAME') }}``: the only way a secret is written in YAML.
_ENV_TEMPLATE = re.compile(
    r"^\{\{\s*env(?:\.([A-Za-z_][A-Za-z0-9_]*)|\(\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\))"
    r"\s*\}\}$"
)


def _not_null(schema: dict[str, Any]) -> None:
    """Drop ``null`` from an optional field's JSON schema: ``dg check yaml`` then reports what is
    wrong inside the block (a key, a choice) instead of "not valid under any of the schemas"."""
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options


def unset(description: str, **options: Any) -> Any:
    """An optional field: left out, the factory's own default applies."""
    return Field(default=None, description=description, json_schema_extra=_not_null, **options)


def is_template(value: object) -> bool:
    """Whether ``value`` is text holding a ``{{ ... }}`` template (checked once rendered)."""
    return isinstance(value, str) and "{{" in value


def env_variable(value: str, option: str) -> str:
    """The variable name of ``'{{ env.NAME }}'``.

    Raises:
        ValueError: For anything else (a literal secret never belongs in YAML).
    """
    match = _ENV_TEMPLATE.match(value.strip())
    if match is None:
        raise ValueError(
            f"{option} must name an environment variable as '{{{{ env.NAME }}}}' (it is read "
            "when the step runs); never write the secret itself in YAML"
        )
    return match.group(1) or match.group(2)


def checked(build: Callable[[], T]) -> T:
    """``build()``, with the framework's error as a ``ValueError`` (its message and fix; the
    validation error names the file, the line and the field)."""
    try:
        return build()
    except DataprocError as exc:
        raise ValueError(exc.message + (f". Fix: {exc.fix}" if exc.fix else "")) from None


def import_object(path: str, option: str) -> Any:
    """The object at import path ``package.module.name`` (or ``package.module:name``).

    Raises:
        ValueError: When the module cannot be imported or has no such name.
    """
    module_name, _, name = path.rpartition(":") if ":" in path else path.rpartition(".")
    if not module_name or not name:
        raise ValueError(f"{option} {path!r} is not an import path such as package.module.name")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(
            f"{option}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    if not hasattr(module, name):
        raise ValueError(f"{option}: module {module_name!r} has no name {name!r}")
    return getattr(module, name)


def _importable(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or the name is empty
        return False


def _one_of(block: BaseModel, option: str) -> None:
    """Refuse a block of alternatives (``source``, ``partitions``) given none or several.

    Raises:
        ValueError: Naming the choices and those given.
    """
    names = list(type(block).model_fields)
    given = [name for name in names if getattr(block, name) is not None]
    if len(given) != 1:
        choices = f"{', '.join(names[:-1])} or {names[-1]}"
        raise ValueError(
            f"{option} takes exactly one of {choices}"
            + (f" (got {', '.join(given)})" if given else "")
        )


class Block(BaseModel):
    """A ``defs.yaml`` block: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def options(self, *exclude: str) -> dict[str, Any]:
        """The options written in YAML (unset ones keep the factory's default)."""
        return self.model_dump(exclude_unset=True, exclude=set(exclude))


# --- sources -------------------------------------------------------------------------------


class HttpAuthBlock(Block):
    """How requests authenticate; the secret is an environment variable read at run time."""

    kind: AuthKindName = Field(default="none", description="none, bearer, basic or api_key")
    secret: str | None = unset(
        description="bearer: the token, basic: the password, api_key: the key; always written "
        "'{{ env.NAME }}' (the variable is read when the step runs)",
        examples=["{{ env.SHOP_TOKEN }}"],
    )
    username: str | None = unset(description="basic: the user name")
    name: str | None = unset(description="api_key: header or query parameter name, e.g. X-API-Key")
    location: ApiKeyLocationName = Field(default="header", description="api_key: header or query")

    @field_validator("secret")
    @classmethod
    def _secret_is_a_variable(cls, value: str | None) -> str | None:
        if value is not None:
            env_variable(value, "auth.secret")
        return value

    @model_validator(mode="after")
    def _complete(self) -> HttpAuthBlock:
        checked(self.to_auth)
        return self

    def to_auth(self) -> HttpAuth:
        """The :class:`HttpAuth` (``bearer("NAME")`` and so on)."""
        secret_env = env_variable(self.secret, "auth.secret") if self.secret else None
        return HttpAuth(
            kind=AuthKind(self.kind),
            secret_env=secret_env,
            username=self.username,
            name=self.name,
            location=ApiKeyLocation(self.location),
        )


class HttpPaginatorBlock(Block):
    """How to walk the pages; ``style`` picks the paginator, the other keys are its options."""

    style: PaginationStyleName = Field(
        default="single",
        description="single, page_number, offset, cursor, next_url or link_header",
    )
    page_size: int | None = unset(description="Records asked for per page")
    max_pages: int | None = unset(description="Stop after this many pages")
    page_param: str | None = unset(description="page_number: page parameter")
    first_page: int | None = unset(description="page_number: 0 or 1")
    size_param: str | None = Field(
        default=None, description="Parameter sending page_size (null: none is sent)"
    )
    total_pages_path: str | None = unset(description="page_number: JSON path of the page count")
    total_path: str | None = unset(description="JSON path of the record count")
    offset_param: str | None = unset(description="offset: offset parameter")
    limit_param: str | None = unset(description="offset: limit parameter")
    cursor_path: str | None = unset(description="cursor: JSON path of the cursor")
    cursor_param: str | None = unset(description="cursor: cursor parameter")
    next_url_path: str | None = unset(description="next_url: JSON path of the next page's URL")

    @model_validator(mode="after")
    def _options_of_the_style(self) -> HttpPaginatorBlock:
        checked(self.to_paginator)
        return self

    def to_paginator(self) -> Paginator:
        """The paginator of ``style`` with the options written (each checked there)."""
        return make_paginator(self.style, **self.options("style"))


class HttpRetryBlock(Block):
    """When and how long to wait before sending a failed request again."""

    max_attempts: int | None = unset(description="Attempts per request (5)")
    backoff: float | None = unset(description="Base backoff, seconds (0.5)")
    max_backoff: float | None = unset(description="Cap on one wait, seconds")
    max_total_wait: float | None = unset(description="Cap on all waits of one request, seconds")
    statuses: list[int] | None = unset(
        description="Statuses retried (default 408, 425, 429 and every 5xx)"
    )

    @model_validator(mode="after")
    def _valid(self) -> HttpRetryBlock:
        checked(self.to_policy)
        return self

    def to_policy(self) -> HttpRetryPolicy:
        """The :class:`HttpRetryPolicy` of the options written."""
        return HttpRetryPolicy.from_options(
            self.statuses, source="retry.statuses", **self.options("statuses")
        )


class HttpIncrementalBlock(Block):
    """Load only records newer than the highest cursor value already in the table."""

    cursor_field: str = Field(description="JSON path of the cursor in a record, e.g. updated_at")
    param: str = Field(description="Request parameter taking the lower bound, e.g. updated_since")
    key: list[str] = Field(default=[], description="Fields identifying a record, e.g. [id]")
    initial_value: str | None = unset(description="Lower bound of the first run")
    table: str | None = unset(description="Table holding the cursor (the target)")

    @model_validator(mode="after")
    def _valid(self) -> HttpIncrementalBlock:
        checked(self.to_incremental)
        return self

    def to_incremental(self) -> Incremental:
        """The :class:`Incremental` of this block (names checked there)."""
        return Incremental(**{**self.options(), "key": tuple(self.key)})


def _refuse_credential(name: str) -> None:
    if name == "user:password@" or is_secret_key(name):
        raise ValueError(
            f"{name!r} looks like a credential: set it with auth (kind bearer, basic or "
            "api_key with name and location) and secret '{{ env.NAME }}'"
        )


class HttpSourceBlock(Block):
    """A JSON API endpoint (``create_http_extractor``; docs/http-extractor.md)."""

    url: str = Field(description="The endpoint (the first page)")
    auth: HttpAuthBlock | None = unset(description="Authentication")
    paginator: HttpPaginatorBlock | None = unset(description="Paging (single)")
    records_path: str | None = unset(description="Dotted path of the records list, e.g. data.items")
    params: dict[str, str | int | float | bool] | None = unset(
        description="Query parameters of every request (no secrets)"
    )
    headers: dict[str, str] | None = unset(
        description="Extra request headers (no secrets: use auth)"
    )
    incremental: HttpIncrementalBlock | None = unset(description="Incremental")
    window_params: dict[str, str] | None = unset(
        description="Partitioned pipelines: query parameters filled from the run's window, "
        "e.g. {since: '{start:%Y-%m-%d}', until: '{end:%Y-%m-%d}'}"
    )
    retry: HttpRetryBlock | None = unset(description="Retry policy")
    timeout: float | None = unset(description="Connect/read timeout, seconds")
    concurrency: int | None = unset(description="Pages in flight (4)")
    max_depth: int | None = unset(description="Nested levels flattened (3)")
    list_mode: ListModeName | None = unset(description="auto or json")
    resource_key: str | None = unset(
        description="An HttpResource giving base URL, headers, auth and retries"
    )

    @field_validator("params", "headers", "window_params")
    @classmethod
    def _no_literal_secrets(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for name in value or {}:
            _refuse_credential(name)
        return value

    @field_validator("url")
    @classmethod
    def _no_secret_in_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            _refuse_credential("user:password@")
        for name, _ in parse_qsl(parts.query, keep_blank_values=True):
            _refuse_credential(name)
        return value

    def to_extractor(self) -> Extractor:
        """``create_http_extractor(url, ...)`` with the options written."""
        options = self.options("url", "auth", "paginator", "incremental", "retry")
        if self.auth is not None:
            options["auth"] = self.auth.to_auth()
        if self.paginator is not None:
            options["paginator"] = self.paginator.to_paginator()
        if self.incremental is not None:
            options["incremental"] = self.incremental.to_incremental()
        if self.retry is not None:
            options["retry"] = self.retry.to_policy()
        return create_http_extractor(self.url, **options)


class ClickHouseSourceBlock(Block):
    """A ClickHouse query, streamed (``create_clickhouse_extractor``)."""

    query: str = Field(description="SQL; bind values with {name:Type} placeholders")
    parameters: dict[str, Any] | None = unset(description="Placeholder values")
    database: str | None = unset(description="Database to run in")
    window_parameters: dict[str, str] | None = unset(
        description="Partitioned pipelines: placeholder values filled from the run's window, "
        "e.g. {start: '{start:%Y-%m-%d %H:%M:%S}'} for WHERE ts >= {start:DateTime}"
    )

    @model_validator(mode="after")
    def _valid(self) -> ClickHouseSourceBlock:
        if not any(is_template(v) for v in self.options().values()):
            checked(self.to_extractor)
        return self

    def to_extractor(self) -> Extractor:
        """``create_clickhouse_extractor(query, ...)``."""
        return create_clickhouse_extractor(
            self.query,
            self.parameters,
            database=self.database,
            window_parameters=self.window_parameters,
        )


class MetabaseSourceBlock(Block):
    """A Metabase table or native SQL query (``create_metabase_extractor``)."""

    database_id: int | None = unset(description="Metabase database id")
    database_name: str | None = unset(description="Database by its Metabase name")
    table_id: int | None = unset(description="Metabase table id")
    table_name: str | None = unset(description="Table by name")
    schema_: str | None = unset(alias="schema", description="Schema of table_name")
    native_query: str | None = unset(description="SQL instead of a table")
    order_by: list[str] | str | None = unset(description="A unique row order")
    columns: list[str] | None = unset(description="Fields to read (default all)")
    limit: int | None = unset(description="At most this many rows")
    method: ReadMethodName | None = unset(description="dataset or export")
    page_size: int | None = unset(description="Rows per request")
    window_parameters: dict[str, str] | None = unset(
        description="Partitioned pipelines, native_query: Metabase variables ({{start}} in the "
        "SQL) filled from the run's window, e.g. {start: '{start:%Y-%m-%d}'}"
    )
    resource_key: str | None = unset(description="The MetabaseResource key")

    @model_validator(mode="after")
    def _one_source(self) -> MetabaseSourceBlock:
        # The native query's {{name}} are Metabase variables, not templates (never rendered).
        if not any(is_template(v) for v in self.options("native_query").values()):
            checked(self.to_extractor)
        return self

    def to_extractor(self) -> Extractor:
        """``create_metabase_extractor(...)`` with the options written."""
        options = self.options("schema_")
        if self.schema_ is not None:
            options["schema"] = self.schema_
        return create_metabase_extractor(**options)


class FileSourceBlock(Block):
    """A CSV or Parquet file (``create_file_extractor``)."""

    path: str = Field(
        description="The file: inside `package` when that is set, else relative to this "
        "defs.yaml's folder (or absolute); in a partitioned pipeline a pattern filled from "
        "the run's window, e.g. exports/orders_{start:%Y-%m-%d}.csv"
    )
    package: str | None = unset(
        description="An installed package holding the file, e.g. palmerpenguins"
    )
    format: Literal["csv", "parquet"] | None = unset(
        description="csv or parquet (default: the suffix)"
    )
    chunk_rows: int | None = unset(description="Rows per chunk read")
    read_options: dict[str, Any] | None = unset(description="Keyword arguments of pandas.read_csv")

    @field_validator("package")
    @classmethod
    def _installed(cls, value: str | None) -> str | None:
        if value is not None and not is_template(value) and not _importable(value):
            raise ValueError(f"no installed package {value!r} (pip install it, or drop package)")
        return value

    def location(self, folder: Path) -> str:
        """The file's path: in ``package``, or relative to ``folder`` (the defs.yaml's)."""
        if self.package is not None:
            return str(files(self.package).joinpath(self.path))
        path = Path(self.path)
        return str(path if path.is_absolute() else folder / path)

    def to_extractor(self, folder: Path) -> Extractor:
        """``create_file_extractor(path, ...)``."""
        return create_file_extractor(self.location(folder), **self.options("path", "package"))


class SourceBlock(Block):
    """Where rows come from: exactly one of http, clickhouse, metabase or file."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    http: HttpSourceBlock | None = unset(description="A JSON API endpoint")
    clickhouse: ClickHouseSourceBlock | None = unset(description="A query")
    metabase: MetabaseSourceBlock | None = unset(description="A Metabase table")
    file: FileSourceBlock | None = unset(description="A CSV or Parquet file")

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceBlock:
        _one_of(self, "source")
        return self

    def to_extractor(self, folder: Path) -> Extractor:
        """The extractor of the one source given."""
        if self.file is not None:
            return self.file.to_extractor(folder)
        block = self.http or self.clickhouse or self.metabase
        assert block is not None  # _exactly_one
        return block.to_extractor()


# --- partitions -----------------------------------------------------------------------------


class TimePartitionsBlock(Block):
    """Time-window partitions from ``start`` (``daily_partitions`` and the others)."""

    start: str = Field(description="First partition: YYYY-MM-DD (hourly: YYYY-MM-DD-HH:MM)")
    timezone: str | None = unset(
        description="IANA time zone of the partitions (default: the pipeline's timezone)"
    )
    end_offset: int | None = unset(description="1: also the current, unfinished partition")


class DailyPartitionsBlock(TimePartitionsBlock):
    """One partition per day."""

    end: str | None = unset(
        description="Last day, exclusive (YYYY-MM-DD), for a data set that stops"
    )


class PartitionsBlock(Block):
    """How runs split the data: exactly one of daily, hourly, weekly, monthly or static."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    daily: DailyPartitionsBlock | None = unset(description="One partition per day")
    hourly: TimePartitionsBlock | None = unset(description="One partition per hour")
    weekly: TimePartitionsBlock | None = unset(description="One per week, Sunday to Sunday")
    monthly: TimePartitionsBlock | None = unset(description="One per calendar month")
    static: list[str] | None = unset(description="A fixed list of keys, e.g. [north, south]")

    @model_validator(mode="after")
    def _exactly_one(self) -> PartitionsBlock:
        _one_of(self, "partitions")
        if self.static is not None and not self.static:
            raise ValueError("partitions.static needs at least one key")
        if not any(is_template(v) for v in _leaves(self.options())):
            checked(lambda: self.to_partitions("UTC"))
        return self

    def to_partitions(self, timezone: str) -> PartitionsDefinition:
        """The Dagster definition (``daily_partitions(start, ...)`` and so on); a time grain
        without its own ``timezone`` takes the pipeline's."""
        if self.static is not None:
            return static_partitions(self.static)
        for grain, make in _TIME_GRAINS.items():
            block = getattr(self, grain)
            if block is not None:
                options = block.options("start")
                options.setdefault("timezone", timezone)
                try:
                    return make(block.start, **options)
                except (ValueError, TypeError) as exc:
                    raise ConfigError(
                        f"invalid {grain} partitions: {exc}",
                        source=f"partitions.{grain}",
                        fix="start as YYYY-MM-DD (hourly: YYYY-MM-DD-HH:MM), an IANA timezone",
                    ) from None
        raise AssertionError("unreachable: _exactly_one")


_TIME_GRAINS: dict[str, Callable[..., PartitionsDefinition]] = {
    "daily": daily_partitions,
    "hourly": hourly_partitions,
    "weekly": weekly_partitions,
    "monthly": monthly_partitions,
}


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


# --- transformers, loader, SQL steps --------------------------------------------------------


class TransformerBlock(Block):
    """A transformer named by import path (``create_transformer``)."""

    function: str = Field(
        description="Import path of fn(df) -> df, e.g. my_package.transforms.clean"
    )
    name: str | None = unset(description="Step name (default: the function's)")
    output_type: str | None = unset(
        description="Import path of a dagster-pandas type every chunk must pass"
    )
    arrow: bool | None = unset(description="fn takes and returns a pyarrow.Table")

    @field_validator("function", "output_type")
    @classmethod
    def _importable(cls, value: str | None) -> str | None:
        if value is not None:
            import_object(value, "import path")
        return value

    def to_transformer(self) -> Transformer:
        """``create_transformer(fn, ...)``."""
        options = self.options("function", "output_type")
        if self.output_type is not None:
            options["output_type"] = import_object(self.output_type, "output_type")
        return create_transformer(import_object(self.function, "function"), **options)


def to_transformer(item: str | TransformerBlock) -> Transformer:
    """A ``transformers`` item: an import path, or a block with options."""
    block = item if isinstance(item, TransformerBlock) else TransformerBlock(function=item)
    return block.to_transformer()


class LoaderBlock(Block):
    """The ClickHouse table the rows go to (``create_clickhouse_loader``; docs/loading.md)."""

    table: str = Field(description="table or database.table")
    mode: WriteModeName | None = unset(
        description="append (default), replace, replace_partitions or upsert"
    )
    database: str | None = unset(description="Database (CLICKHOUSE_DATABASE)")
    key_columns: list[str] | None = unset(description="upsert: the key")
    version_column: str | None = unset(description="upsert: the latest row")
    order_by: list[str] | None = unset(description="Sorting key of a new table")
    partition_by: str | None = unset(description="Partition expression")
    schema_drift: DriftPolicyName | None = unset(description="freeze (default), evolve or discard")
    create_table: bool | None = unset(description="Create a missing table")
    allow_empty_replace: bool | None = unset(description="Let replace with no rows empty the table")
    optimize_after_upsert: bool | None = unset(description="OPTIMIZE ... FINAL")
    keep_chunks: bool | None = unset(description="Keep the run's chunk files")

    @model_validator(mode="after")
    def _valid(self) -> LoaderBlock:
        if not any(is_template(v) for v in self.options().values()):
            checked(self.to_loader)
        return self

    def to_loader(self) -> ClickHouseLoader:
        """``create_clickhouse_loader(table, ...)`` with the options written."""
        return create_clickhouse_loader(self.table, **self.options("table"))


class SqlStepBlock(Block):
    """A table rebuilt from a SELECT inside ClickHouse after the load (``create_sql_step``)."""

    table: str = Field(description="table or database.table to rebuild")
    select: str = Field(description="The SELECT statement")
    order_by: list[str] | None = unset(description="Sorting key")
    engine: str | None = unset(description="Table engine (MergeTree)")
    name: str | None = unset(description="Step name (sql_<table>)")
    reads: list[str] | None = unset(description="Tables read (default: parsed)")

    @model_validator(mode="after")
    def _valid(self) -> SqlStepBlock:
        if not any(is_template(v) for v in self.options().values()):
            checked(self.to_sql_step)
        return self

    def to_sql_step(self) -> SqlStep:
        """``create_sql_step(select, table, ...)``."""
        return create_sql_step(self.select, self.table, **self.options("select", "table"))


def verbatim_paths(data: Mapping[str, Any]) -> set[tuple[str, ...]]:
    """Paths in raw attributes left as written, never rendered: the secret (the *name* of its
    variable) and a Metabase native query, whose ``{{name}}`` are Metabase's own variables."""
    source = data.get("source") or {}
    paths: set[tuple[str, ...]] = set()
    http = source.get("http") if isinstance(source, Mapping) else None
    if isinstance(http, Mapping) and isinstance(http.get("auth"), Mapping):
        paths.add(("source", "http", "auth", "secret"))
    metabase = source.get("metabase") if isinstance(source, Mapping) else None
    if isinstance(metabase, Mapping) and "native_query" in metabase:
        paths.add(("source", "metabase", "native_query"))
    return paths
