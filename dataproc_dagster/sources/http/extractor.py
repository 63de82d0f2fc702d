"""``create_http_extractor``: JSON APIs as a stream of chunks, with auth, paging and retries.

Keeps the original framework's ``url`` / ``headers`` / ``timeout`` vocabulary and adds auth,
one paginator per endpoint, a record path, retries, concurrency and incremental loads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import pyarrow as pa

from dataproc_dagster.core.choices import parse_choice
from dataproc_dagster.core.errors import ConfigError, DataprocError
from dataproc_dagster.core.redaction import is_secret_name
from dataproc_dagster.pipeline.contracts import WINDOW_METADATA, StepContext
from dataproc_dagster.pipeline.window import render_window
from dataproc_dagster.sources.http.auth import NO_AUTH, AuthKind, HttpAuth
from dataproc_dagster.sources.http.client import HttpSource
from dataproc_dagster.sources.http.config import HttpExtractConfig, spec_from_config
from dataproc_dagster.sources.http.fetching import iter_pages
from dataproc_dagster.sources.http.incremental import Incremental, LowerBound, read_lower_bound
from dataproc_dagster.sources.http.pagination import Paginator, single
from dataproc_dagster.sources.http.records import ListMode, RecordConverter
from dataproc_dagster.sources.http.retry import HttpRetryPolicy
from dataproc_dagster.sources.http.spec import HttpSourceSpec
from dataproc_dagster.sources.http.walker import PageWalker


class HttpExtractor:
    """Extractor spec for an HTTP JSON endpoint (see :func:`create_http_extractor`).

    With ``spec=None`` the endpoint comes from the op's run config (the generic job), parsed by
    ``config_parser``.
    """

    kind = "http"

    def __init__(
        self,
        spec: HttpSourceSpec | None,
        *,
        config_schema: Any = None,
        config_parser: Any = None,
        resource_keys: frozenset[str] = frozenset(),
    ) -> None:
        self.spec = spec
        self.config_schema = config_schema
        self._config_parser = config_parser
        keys = set(resource_keys)
        if spec is not None and spec.resource_key:
            keys.add(spec.resource_key)
        if spec is None or spec.incremental is not None:
            keys.add("clickhouse")
        self.required_resource_keys = frozenset(keys)

    def describe(self) -> str:
        """Where the rows come from, with secrets masked."""
        if self.spec is None:
            return "HTTP endpoint from run config"
        return self.spec.describe()

    def resolve(self, ctx: StepContext) -> HttpSourceSpec:
        """This step's spec: the fixed one, or the one in the run config."""
        if self.spec is not None:
            return self.spec
        if self._config_parser is None:
            raise ConfigError(
                "no endpoint configured",
                pipeline=ctx.pipeline,
                source="HTTP extractor",
                fix="pass a spec or a config parser",
            )
        config = ctx.config_model if ctx.config_model is not None else ctx.config
        return self._config_parser(config)

    def extract(self, ctx: StepContext) -> Iterator[pa.Table]:
        """Yield one Arrow table per page, in page order."""
        try:
            yield from self._extract(ctx)
        except DataprocError as exc:
            raise exc.with_pipeline(ctx.pipeline) from None

    def _extract(self, ctx: StepContext) -> Iterator[pa.Table]:
        spec = self.resolve(ctx)
        source, url = build_source(spec, ctx)
        log = ctx.log
        params = dict(spec.params)
        if spec.window_params:
            window = render_window(
                ctx.window, spec.window_params, option="HTTP extractor window_params"
            )
            params.update(window)
            ctx.metadata["window_params"] = ", ".join(f"{k}={v}" for k, v in window.items())
        bound: LowerBound | None = None
        if spec.incremental is not None:
            bound = self._lower_bound(spec.incremental, ctx)
            if bound is not None:
                params[spec.incremental.param] = bound.param_value
                ctx.metadata[WINDOW_METADATA] = f"{spec.incremental.column}>={bound.param_value}"
                log.info(
                    f"incremental: {spec.incremental.column} >= {bound.param_value} "
                    f"({len(bound.keys)} row(s) already loaded at the bound)"
                )
            elif spec.incremental.initial_value is not None:
                params[spec.incremental.param] = spec.incremental.initial_value
        converter = RecordConverter(max_depth=spec.max_depth, list_mode=spec.list_mode)
        walker = PageWalker(spec.paginator, url, params)
        concurrency = spec.concurrency if spec.paginator.parallel else 1
        pages = received = kept = 0
        started = time.perf_counter()
        for page, records in iter_pages(
            source, walker, records_path=spec.records_path, concurrency=concurrency
        ):
            pages += 1
            received += len(records)
            if bound is not None and spec.incremental is not None:
                records = bound.keep(records, spec.incremental)
            if records:
                kept += len(records)
                yield converter.convert(records, where=page.url)
        seconds = time.perf_counter() - started
        log.info(
            f"{spec.describe(source)}: {pages} page(s), {received} record(s) received, "
            f"{kept} kept, {seconds:.2f}s"
        )

    def _lower_bound(self, incremental: Incremental, ctx: StepContext) -> LowerBound | None:
        target: Any = incremental.table or ctx.target or _load_table_from_run_config(ctx)
        if target is None:
            raise ConfigError(
                "incremental loading needs the target table to read the last cursor from",
                source=f"incremental cursor {incremental.cursor_field}",
                fix="use the extractor in a pipeline with a ClickHouse loader, or set "
                "Incremental(table='db.table')",
            )
        return read_lower_bound(ctx.clickhouse.connection, target, incremental, step=ctx.step)


def _load_table_from_run_config(ctx: StepContext) -> str | None:
    # A generic job names its target only in the load step's run config.
    run_config = getattr(ctx.dagster, "run_config", None) or {}
    ops = run_config.get("ops") or {}
    load = ops.get(f"{ctx.pipeline}__load") or {}
    table = (load.get("config") or {}).get("table")
    return table if isinstance(table, str) and table else None


def build_source(spec: HttpSourceSpec, ctx: StepContext | None) -> tuple[HttpSource, str]:
    """The :class:`HttpSource` and the absolute first URL for ``spec``.

    Settings given to the extractor win over those of the named http resource.
    """
    pipeline = ctx.pipeline if ctx is not None else None
    log = ctx.log.warning if ctx is not None else None
    url = spec.url
    if spec.resource_key:
        if ctx is None:
            raise ConfigError(
                "a resource-backed extractor needs a step context",
                source="HTTP extractor",
                fix="run it inside a Dagster step",
            )
        resource = ctx.resource(spec.resource_key)
        source = resource.source(pipeline=pipeline, log=log)
        url = resource.resolve_url(spec.url)
    else:
        source = HttpSource(pipeline=pipeline, log=log)
    headers = {**source.headers, **spec.headers}
    secrets = list(source.extra_secrets)
    secrets.extend(v for k, v in spec.headers.items() if is_secret_name(k))
    auth, secret = source.auth, source.secret
    if spec.auth.kind != AuthKind.NONE:
        auth = spec.auth
        secret = spec.auth.read_secret(pipeline=pipeline, source=spec.describe())
    timeout = spec.timeout if spec.timeout is not None else source.timeout
    retry = spec.retry or source.retry
    return replace(
        source,
        headers=headers,
        auth=auth,
        secret=secret,
        timeout=timeout,
        retry=retry,
        extra_secrets=tuple(secrets),
    ), url


def create_http_extractor(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    auth: HttpAuth = NO_AUTH,
    paginator: Paginator | None = None,
    records_path: str | None = None,
    params: Mapping[str, Any] | None = None,
    incremental: Incremental | None = None,
    concurrency: int = 4,
    max_depth: int = 3,
    list_mode: ListMode | str = ListMode.AUTO,
    retry: HttpRetryPolicy | None = None,
    resource_key: str | None = None,
    window_params: Mapping[str, str] | None = None,
) -> HttpExtractor:
    """An extractor for a JSON API endpoint.

    Args:
        url: The endpoint; relative URLs are joined to the base URL of ``resource_key``.
        headers: Extra request headers (values of secret-looking names never appear in messages).
        timeout: Connect/read timeout in seconds (default: the resource's, else 30).
        auth: ``bearer(env)``, ``basic(user, env)``, ``api_key(name, env, location=...)``;
            the secret is read from the environment variable when the step runs.
        paginator: ``single()`` (default), ``page_number(...)``, ``offset(...)``,
            ``cursor(...)``, ``next_url(...)`` or ``link_header()``.
        records_path: Dotted path of the records list (``data.items``); by default a
            top-level list or the only list-valued key.
        params: Query parameters of every request.
        incremental: Load only what is newer than the target table's highest cursor value.
        concurrency: Pages in flight at once for ``page_number`` / ``offset`` paging when the
            first response tells the total.
        max_depth: Levels of nested objects flattened into ``parent_child`` columns.
        list_mode: ``auto`` (Array columns for lists of one scalar type) or ``json``.
        retry: Retry policy; by default the resource's, else 5 attempts with backoff.
        resource_key: An :class:`~dataproc_dagster.sources.http.resource.HttpResource` to take the
            base URL, headers, auth and retries from.
        window_params: Query parameters filled from the partition window of a partitioned
            pipeline, e.g. ``{"from": "{start:%Y-%m-%d}", "to": "{end:%Y-%m-%d}"}``
            (``{start}``/``{end}`` take a strftime format; ``{key}`` is the partition key).

    Example:
        ``create_http_extractor("https://api.example.com/orders", auth=bearer("SHOP_TOKEN"),
        paginator=page_number(total_pages_path="meta.pages"), records_path="data")``
    """
    spec = HttpSourceSpec(
        url=url,
        headers=dict(headers or {}),
        timeout=timeout,
        auth=auth,
        paginator=paginator or single(),
        records_path=records_path,
        params=dict(params or {}),
        incremental=incremental,
        concurrency=concurrency,
        max_depth=max_depth,
        list_mode=parse_choice(ListMode, list_mode, what="list_mode", source="HTTP extractor"),
        retry=retry,
        resource_key=resource_key,
        window_params=dict(window_params or {}),
    )
    return HttpExtractor(spec)


def create_configurable_http_extractor() -> HttpExtractor:
    """An extractor whose endpoint, auth, paging and incremental cursor come from run config.

    Used by the generic ``http_to_clickhouse`` job; the options are those of
    :func:`create_http_extractor` (see docs/http-extractor.md).
    """
    return HttpExtractor(None, config_schema=HttpExtractConfig, config_parser=spec_from_config)
