"""A stand-in Metabase for tests, written from ``metabase-api.md`` (the project's reference).

It serves the REST API an extractor uses, backed by real data in SQLite (one in-memory
database per Metabase database; a schema is an attached database, so native SQL can say
``PUBLIC.ORDERS``). It follows the reference: 401 ``Unauthenticated`` as plain text, 404
``Not found.`` / ``API endpoint does not exist.``, query success as HTTP 202 with the body in
``data``-first key order, the 2000-row cap and its ``rows_truncated`` rules, ``constraints``
overriding the defaults, an MBQL ``count`` aggregation, exports keyed by display name without a
cap flag and cut at an admin's download row limit (any number, e.g. 1,500), failed queries as
202 (``failure_style="old"``) or 400 (``"new"``) with the same body, ``js-int-to-string?`` in
both generations, ISO temporal values with the report zone's offset.

Faults are injected per request path: a status (with ``Retry-After``, and any body, e.g. a
proxy's ``500`` HTML page), a body cut off mid-stream, a reset connection, or an error appended
to a half-streamed body (old releases).

Every behaviour cites the section of the reference it imitates ("section N" below means
section N of ``metabase-api.md``).

Run alone for benchmarks: ``python -m dataproc_dagster_tests.servers.metabase_standin --rows N``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import io
import json
import math
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

# Section 7: integers beyond +-2^53 - 1 are stringified by current releases.
JS_MAX_SAFE = 9_007_199_254_740_991
# Section 5: the absolute maximum, also the export cap when no download limit is set (6).
ABSOLUTE_MAX = 1_048_575
# Section 5: the constraints /api/dataset adds, which request constraints override.
DEFAULT_CONSTRAINTS = {"max-results": 10_000, "max-results-bare-rows": 2_000}
# Section 6: the export formats.
EXPORT_FORMATS = ("csv", "json", "xlsx")
NUMERIC_FAMILY = ("type/Integer", "type/BigInteger", "type/Decimal")


@dataclass
class StandinField:
    """A field of a stand-in table."""

    id: int
    table_id: int
    name: str
    base_type: str
    display_name: str
    semantic_type: str | None = None
    visibility_type: str = "normal"
    position: int = 0
    database_type: str = ""

    def as_api(self) -> dict[str, Any]:
        """The field object as ``/api/table/:id/query_metadata`` returns it (section 3 keys)."""
        return {
            "id": self.id,
            "table_id": self.table_id,
            "name": self.name,
            "display_name": self.display_name,
            "database_type": self.database_type or _sqlite_type(self.base_type),
            "base_type": self.base_type,
            "effective_type": self.base_type,
            "semantic_type": self.semantic_type,
            "position": self.position,
            "database_position": self.position,
            "visibility_type": self.visibility_type,
            "fk_target_field_id": None,
            "active": True,
            "nfc_path": None,
            "coercion_strategy": None,
            "fingerprint": None,
            "has_field_values": "list",
        }


@dataclass
class StandinTable:
    """A table of a stand-in database."""

    id: int
    db_id: int
    schema: str | None
    name: str
    fields: list[StandinField] = field(default_factory=list)
    visibility_type: str | None = None

    @property
    def sql_name(self) -> str:
        """How SQLite names it (schemas are attached databases)."""
        return f'"{self.schema}"."{self.name}"' if self.schema else f'"{self.name}"'

    def as_api(self, *, with_fields: bool = False, rows: int | None = None) -> dict[str, Any]:
        """The table object (section 3 keys; ``schema`` may be null, ``rows`` an estimate)."""
        data: dict[str, Any] = {
            "id": self.id,
            "db_id": self.db_id,
            "schema": self.schema,
            "name": self.name,
            "display_name": self.name.replace("_", " ").title(),
            "description": None,
            "entity_type": "entity/GenericTable",
            "visibility_type": self.visibility_type,
            "active": True,
            "rows": rows,
            "field_order": "database",
            "initial_sync_status": "complete",
        }
        if with_fields:
            data["fields"] = [f.as_api() for f in self.fields]
        return data


@dataclass
class StandinDatabase:
    """A Metabase database backed by an in-memory SQLite connection."""

    id: int
    name: str
    engine: str
    connection: sqlite3.Connection
    lock: threading.Lock = field(default_factory=threading.Lock)
    tables: dict[int, StandinTable] = field(default_factory=dict)
    schemas: set[str] = field(default_factory=set)

    def as_api(self) -> dict[str, Any]:
        """The database object (section 3 keys; no ``details``: the caller is not an admin)."""
        return {
            "id": self.id,
            "name": self.name,
            "engine": self.engine,
            "features": ["basic-aggregations", "native-parameters", "nested-queries"],
            "native_permissions": "write",
            "is_sample": False,
            "is_audit": False,
            "initial_sync_status": "complete",
            "timezone": "UTC",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        }


@dataclass
class Fault:
    """A fault served instead of (or in the middle of) the normal answer.

    Attributes:
        path: Request path the fault applies to (exact, e.g. ``/api/dataset``).
        kind: ``status`` (answer ``status`` with ``body``), ``cut`` (send the success headers
            and part of the body, then close), ``reset`` (close without answering),
            ``append_error`` (old releases: half the rows, then an error object).
        status: HTTP status for ``status``.
        retry_after: ``Retry-After`` header value, if any.
        body: Body for ``status`` (plain text unless ``content_type`` says otherwise).
        content_type: Content type of ``body``; a proxy's error page is ``text/html``.
        times: How many requests get the fault.
        method: HTTP method it applies to.
    """

    path: str
    kind: str = "status"
    status: int = 503
    retry_after: str | None = None
    body: str = "Service Unavailable"
    content_type: str = "text/plain"
    times: int = 1
    method: str = "POST"


class QueryFailed(Exception):
    """A query that Metabase would report as failed in the body."""

    def __init__(self, message: str, error_type: str = "invalid-query") -> None:
        super().__init__(message)
        self.error_type = error_type


class HttpAnswer(Exception):
    """A plain HTTP answer (401, 404, 400 ...) outside query execution."""

    def __init__(self, status: int, body: Any, content_type: str = "text/plain") -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type


class MetabaseStandin:
    """The stand-in server. Use as a context manager; ``base_url`` is set once it runs.

    Args:
        api_key: The API key it accepts (``X-API-KEY``).
        username: The user that may log in.
        password: That user's password.
        failure_style: ``old`` (failed query = HTTP 202) or ``new`` (= HTTP 400/500).
        int_style: ``master`` (stringify integers beyond 2^53) or ``v047`` (stringify
            PK/FK integer columns of MBQL queries).
        results_timezone: The report time zone.
        honour_constraints: Whether request ``constraints`` override the defaults.
        gzip_responses: Gzip bodies when the request accepts it.
        honour_middleware: Whether a request's ``middleware`` (``js-int-to-string?``) counts;
            off, integers are stringified as if the request had not asked otherwise.
        download_row_limit: The admin's download row limit (reference section 6: "Cap: MBQL
            ``limit`` if any, else 1,048,575 (or ``MB_DOWNLOAD_ROW_LIMIT`` for csv/json on
            master)"; section 5 lists it among the limits admins change). Exports stop at it
            silently: "No truncation flag: a result of exactly the cap may be cut". Any
            number an admin typed, e.g. 1,500 or 2,500.
    """

    def __init__(
        self,
        *,
        api_key: str = "mb_standin_0123456789abcdef",
        username: str = "analyst@example.com",
        password: str = "correct horse battery staple",
        failure_style: str = "new",
        int_style: str = "master",
        results_timezone: str = "UTC",
        honour_constraints: bool = True,
        gzip_responses: bool = True,
        honour_middleware: bool = True,
        download_row_limit: int = ABSOLUTE_MAX,
    ) -> None:
        self.api_key = api_key
        self.username = username
        self.password = password
        self.failure_style = failure_style
        self.int_style = int_style
        self.results_timezone = results_timezone
        self.honour_constraints = honour_constraints
        self.gzip_responses = gzip_responses
        self.honour_middleware = honour_middleware
        self.download_row_limit = download_row_limit
        self.databases: dict[int, StandinDatabase] = {}
        self.sessions: set[str] = set()
        self.login_failures: dict[str, int] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self._lock = threading.Lock()
        self._next_id = {"db": 1, "table": 10, "field": 100}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- data ---------------------------------------------------------------------------

    def _new_id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] += 1
        return value

    def add_database(self, name: str, *, engine: str = "h2") -> int:
        """Add an empty database; returns its id."""
        db_id = self._new_id("db")
        connection = sqlite3.connect(":memory:", check_same_thread=False)
        self.databases[db_id] = StandinDatabase(db_id, name, engine, connection)
        return db_id

    def add_table(
        self,
        db_id: int,
        name: str,
        columns: Sequence[tuple[str, str] | tuple[str, str, dict[str, Any]]],
        rows: Iterable[Sequence[Any]] = (),
        *,
        schema: str | None = None,
        visibility_type: str | None = None,
    ) -> int:
        """Add a table with ``columns`` = (name, base_type[, options]) and its rows.

        Options of a column: ``semantic_type``, ``display_name``, ``visibility_type``.
        Values are stored as SQLite holds them: dates / datetimes as ISO text (a datetime
        without offset is in the report zone), booleans as 0/1.
        """
        db = self.databases[db_id]
        table = StandinTable(self._new_id("table"), db_id, schema, name)
        table.visibility_type = visibility_type
        for position, column in enumerate(columns):
            options: dict[str, Any] = dict(column[2]) if len(column) > 2 else {}  # type: ignore[misc]
            table.fields.append(
                StandinField(
                    id=self._new_id("field"),
                    table_id=table.id,
                    name=column[0],
                    base_type=column[1],
                    display_name=options.get("display_name", column[0].replace("_", " ").title()),
                    semantic_type=options.get("semantic_type"),
                    visibility_type=options.get("visibility_type", "normal"),
                    position=position,
                )
            )
        with db.lock:
            if schema and schema not in db.schemas:
                db.connection.execute(f"ATTACH DATABASE ':memory:' AS \"{schema}\"")
                db.schemas.add(schema)
            pk = next((f for f in table.fields if f.semantic_type == "type/PK"), None)
            defs = ", ".join(
                f'"{f.name}" {_sqlite_type(f.base_type)}' + (" PRIMARY KEY" if f is pk else "")
                for f in table.fields
            )
            db.connection.execute(f"CREATE TABLE {table.sql_name} ({defs})")
            marks = ", ".join("?" for _ in table.fields)
            db.connection.executemany(
                f"INSERT INTO {table.sql_name} VALUES ({marks})",
                ([_to_sqlite(v) for v in row] for row in rows),
            )
            db.connection.commit()
        db.tables[table.id] = table
        return table.id

    def table(self, table_id: int) -> StandinTable:
        """A table by id."""
        for db in self.databases.values():
            if table_id in db.tables:
                return db.tables[table_id]
        raise KeyError(table_id)

    def add_fault(self, path: str, **options: Any) -> Fault:
        """Queue a fault for requests to ``path`` (see :class:`Fault`)."""
        fault = Fault(path, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def expire_sessions(self) -> None:
        """Forget every session, as when ``MAX_SESSION_AGE`` passes."""
        self.sessions.clear()

    def count(self, method: str, path: str) -> int:
        """How many requests were made to ``method path``."""
        return sum(1 for m, p, _ in self.requests if m == method and p == path)

    def dataset_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies posted to ``/api/dataset``, in order."""
        return [b for m, p, b in self.requests if p == "/api/dataset" and b is not None]

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> str:
        """Start serving on a free port of 127.0.0.1 (in a thread); returns the base URL."""
        standin = self

        class Handler(_Handler):
            server_standin = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MetabaseStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The next queued fault for this request, if any (consumes one use)."""
        with self._lock:
            for fault in self.faults:
                if fault.path == path and fault.method == method and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    # -- queries ------------------------------------------------------------------------

    def run(
        self, body: dict[str, Any], *, export: bool
    ) -> tuple[list[dict[str, Any]], list[list[Any]], dict[str, Any]]:
        """Run a query body; returns (cols, rows as stored, info for the response)."""
        # Section 8: pre-query request errors keep plain HTTP semantics (missing database
        # -> 400, unknown database -> 404 "Not found.").
        if "database" not in body or body["database"] is None:
            raise HttpAnswer(
                400,
                {"errors": {"database": "value must be an integer greater than zero."}},
                "application/json",
            )
        db = self.databases.get(body["database"]) if isinstance(body["database"], int) else None
        if db is None:
            raise HttpAnswer(404, "Not found.")
        # Section 5: request constraints override the defaults (merged under them); section 6:
        # exports drop the default constraints. ``max-results-bare-rows`` is clamped to
        # ``max-results`` (section 5).
        constraints = {} if export else dict(DEFAULT_CONSTRAINTS)
        if self.honour_constraints and not export and isinstance(body.get("constraints"), dict):
            constraints.update(body["constraints"])
        if constraints:
            constraints["max-results-bare-rows"] = min(
                constraints["max-results-bare-rows"], constraints["max-results"]
            )
        kind = body.get("type")
        if kind == "native":
            return self._run_native(db, body, constraints, export)
        if kind == "query":
            return self._run_mbql(db, body, constraints, export)
        raise QueryFailed(f"Invalid query type: {kind}")

    def _run_native(
        self, db: StandinDatabase, body: dict[str, Any], constraints: dict[str, int], export: bool
    ) -> tuple[list[dict[str, Any]], list[list[Any]], dict[str, Any]]:
        sql = str((body.get("native") or {}).get("query") or "")
        # Section 5: native SQL is capped like bare rows; section 6: an export only at the
        # download limit.
        cap = self.download_row_limit if export else constraints["max-results-bare-rows"]
        sql, bound = _bind_variables(body, sql)
        with db.lock:
            try:
                cursor = db.connection.execute(sql, bound)
                rows = [list(r) for r in cursor.fetchmany(cap)]
            except sqlite3.Error as exc:
                raise QueryFailed(f"{exc}") from None
            names = [d[0] for d in cursor.description or ()]
        # Section 4: native cols carry source "native", a field_ref by name and the column
        # label as display_name.
        known = {f.name: f for t in db.tables.values() for f in t.fields}
        cols = []
        for index, name in enumerate(names):
            base = known[name].base_type if name in known else _infer([r[index] for r in rows])
            cols.append(
                {
                    "name": name,
                    "display_name": name,
                    "base_type": base,
                    "effective_type": base,
                    "semantic_type": None,
                    "field_ref": ["field", name, {"base-type": base}],
                    "source": "native",
                }
            )
        # Section 5: rows_truncated = the cap when the row count equals it; section 6: exports
        # carry no flag.
        flag = None if export or len(rows) != cap else cap
        return cols, rows, {"rows_truncated": flag, "native": sql, "pk_fk": set()}

    def _run_mbql(
        self, db: StandinDatabase, body: dict[str, Any], constraints: dict[str, int], export: bool
    ) -> tuple[list[dict[str, Any]], list[list[Any]], dict[str, Any]]:
        inner = body.get("query") or {}
        source = inner.get("source-table")
        table = db.tables.get(source) if isinstance(source, int) else None
        if table is None:
            # Section 10.6: an unknown table is a failed-query body on /api/dataset.
            raise QueryFailed(
                f"Failed to fetch Table {source}: Table does not exist, or belongs to a "
                "different Database."
            )
        by_id = {f.id: f for f in table.fields}
        by_name = {f.name: f for f in table.fields}

        def resolve(ref: Any) -> StandinField:
            if isinstance(ref, list) and len(ref) >= 2 and ref[0] == "field":
                target = by_id.get(ref[1]) if isinstance(ref[1], int) else by_name.get(ref[1])
                if target is not None:
                    return target
            raise QueryFailed(f"Invalid field reference: {json.dumps(ref)}")

        # Section 4: without ``fields`` MBQL selects every active field except sensitive and
        # retired ones; fields may be referenced by id or by name.
        if inner.get("fields"):
            selected = [resolve(ref) for ref in inner["fields"]]
        else:
            selected = [
                f for f in table.fields if f.visibility_type not in ("sensitive", "retired")
            ]
        sql = "SELECT " + ", ".join(f'"{f.name}"' for f in selected) + f" FROM {table.sql_name}"
        params: list[Any] = []
        if inner.get("filter"):
            clause, params = _filter_sql(inner["filter"], resolve)
            sql += f" WHERE {clause}"
        if inner.get("aggregation"):
            return self._run_count(db, inner, sql, params)
        if inner.get("order-by"):
            parts = []
            for direction, ref in inner["order-by"]:
                parts.append(f'"{resolve(ref).name}" {"DESC" if direction == "desc" else "ASC"}')
            sql += " ORDER BY " + ", ".join(parts)
        page = inner.get("page")
        limit = inner.get("limit")
        # Section 5: rows = min(limit, page.items, cap), cap 2000 (or the request's
        # constraints) without aggregation; section 6: an export stops at the MBQL limit if
        # any, else at the download limit, without a flag.
        cap = self.download_row_limit if export else constraints["max-results-bare-rows"]
        count = cap
        if isinstance(limit, int):
            count = min(count, limit) if not export else limit
        offset = 0
        if isinstance(page, dict):
            # Section 4: page is 1-based, LIMIT items OFFSET items * (page - 1).
            items = int(page.get("items", cap))
            offset = items * (int(page.get("page", 1)) - 1)
            count = min(count, items)
        sql += f" LIMIT {int(count)}" + (f" OFFSET {offset}" if offset else "")
        with db.lock:
            try:
                rows = [list(r) for r in db.connection.execute(sql, params).fetchall()]
            except sqlite3.Error as exc:
                raise QueryFailed(str(exc)) from None
        # The flag: L = bare-rows cap without page, else max-results (no aggregation here).
        flag_limit = (
            constraints.get("max-results", 0)
            if page
            else constraints.get("max-results-bare-rows", 0)
        )
        flag = None if export or len(rows) != flag_limit else flag_limit
        # Section 4: cols of an MBQL query; temporal columns carry
        # ["field", id, {"temporal-unit": "default"}] when selected by default.
        cols = []
        for f in selected:
            temporal = f.base_type.startswith(("type/Date", "type/DateTime"))
            cols.append(
                {
                    "name": f.name,
                    "display_name": f.display_name,
                    "base_type": f.base_type,
                    "effective_type": f.base_type,
                    "semantic_type": f.semantic_type,
                    "field_ref": [
                        "field",
                        f.id,
                        {"temporal-unit": "default"} if temporal else None,
                    ],
                    "id": f.id,
                    "table_id": table.id,
                    "source": "fields",
                }
            )
        # Section 7: v0.47 stringified every PK/FK integer column of MBQL queries.
        pk_fk = {i for i, f in enumerate(selected) if f.semantic_type in ("type/PK", "type/FK")}
        return cols, rows, {"rows_truncated": flag, "native": sql, "pk_fk": pk_fk}

    def _run_count(
        self,
        db: StandinDatabase,
        inner: dict[str, Any],
        sql: str,
        params: list[Any],
    ) -> tuple[list[dict[str, Any]], list[list[Any]], dict[str, Any]]:
        """An MBQL ``aggregation`` query; only ``[["count"]]`` (a row count) is understood.

        Section 5: an aggregated query is capped at 10,000 rows (``max-results``) and flagged
        when it reaches that; a count without breakout is one row, so never flagged.
        """
        if inner["aggregation"] != [["count"]] or inner.get("breakout"):
            raise QueryFailed(f"Unsupported aggregation: {json.dumps(inner['aggregation'])}")
        select = sql.index(" FROM ")
        counting = "SELECT COUNT(*)" + sql[select:]
        with db.lock:
            try:
                total = int(db.connection.execute(counting, params).fetchone()[0])
            except sqlite3.Error as exc:
                raise QueryFailed(str(exc)) from None
        col = {
            "name": "count",
            "display_name": "Count",
            "base_type": "type/BigInteger",
            "effective_type": "type/BigInteger",
            "semantic_type": "type/Quantity",
            "field_ref": ["aggregation", 0],
            "source": "aggregation",
        }
        return [col], [[total]], {"rows_truncated": None, "native": counting, "pk_fk": set()}

    def encode_dataset_value(
        self, value: Any, col: dict[str, Any], *, stringify: bool, pk_fk: bool
    ) -> Any:
        """A stored value as ``/api/dataset`` writes it (reference section 7)."""
        if value is None:
            return None
        base = col["base_type"]
        if base in NUMERIC_FAMILY and isinstance(value, int):
            if stringify and self.int_style == "master" and abs(value) > JS_MAX_SAFE:
                return str(value)
            if stringify and self.int_style == "v047" and pk_fk:
                return str(value)
            return value
        if base == "type/Boolean":
            return bool(value)
        if base == "type/Date":
            return self._with_offset(datetime.fromisoformat(str(value)[:10]))
        if base.startswith("type/DateTime"):
            return self._with_offset(datetime.fromisoformat(str(value)))
        if base.startswith("type/Time"):
            return f"{value}Z" if self.results_timezone == "UTC" else str(value)
        return value

    def _with_offset(self, moment: datetime) -> str:
        zone = _zone(self.results_timezone)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        moment = moment.astimezone(zone)
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
        if moment.microsecond:
            text += f".{moment.microsecond:06d}".rstrip("0")
        offset = moment.utcoffset() or timedelta(0)
        if offset == timedelta(0):
            return text + "Z"
        total = int(offset.total_seconds())
        sign = "+" if total >= 0 else "-"
        total = abs(total)
        return f"{text}{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"

    def encode_dataset_rows(
        self, rows: list[list[Any]], cols: list[dict[str, Any]], *, stringify: bool, pk_fk: set[int]
    ) -> list[list[Any]]:
        """Every row as ``/api/dataset`` writes it, encoded column by column (fast)."""
        utc = self.results_timezone == "UTC"
        columns = list(zip(*rows, strict=True)) if rows else []
        out = []
        for index, values in enumerate(columns):
            base = cols[index]["base_type"]
            if utc and base == "type/Date":
                out.append([None if v is None else f"{str(v)[:10]}T00:00:00Z" for v in values])
            elif utc and base.startswith("type/DateTime"):
                out.append([None if v is None else _utc_text(str(v)) for v in values])
            elif (
                base in NUMERIC_FAMILY
                and not (stringify and (self.int_style == "master" or index in pk_fk))
            ) or base in ("type/Text", "type/Float"):
                out.append(list(values))
            else:
                col, flag = cols[index], index in pk_fk
                out.append(
                    [
                        self.encode_dataset_value(v, col, stringify=stringify, pk_fk=flag)
                        for v in values
                    ]
                )
        return [list(row) for row in zip(*out, strict=True)]

    @staticmethod
    def encode_export_value(value: Any, col: dict[str, Any]) -> Any:
        """A stored value as an export writes it (reference section 6)."""
        if value is None:
            return None
        base = col["base_type"]
        if base == "type/Boolean":
            return bool(value)
        if base == "type/Date":
            return str(value)[:10]
        if base.startswith("type/DateTime"):
            moment = datetime.fromisoformat(str(value))
            if moment.time() == datetime.min.time() and not moment.microsecond:
                return moment.date().isoformat()  # midnight collapses to a bare date
            return moment.replace(tzinfo=None).isoformat()
        return value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_standin: MetabaseStandin

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -----------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes | str,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        # Section 4 / 10.8: responses may be gzip-encoded when the request accepts it.
        gzipped = (
            self.server_standin.gzip_responses
            and len(data) > 1024
            and "gzip" in (self.headers.get("Accept-Encoding") or "")
        )
        if gzipped:
            data = gzip.compress(data, compresslevel=1)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        if close:
            # Streaming answers: chunked, then the connection closes (current master).
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            view = memoryview(data)
            for start in range(0, len(view), 1 << 16):
                piece = view[start : start + (1 << 16)]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def _send_json(self, status: int, body: Any, **kwargs: Any) -> None:
        self._send(status, json.dumps(body), "application/json; charset=utf-8", **kwargs)

    def _authenticated(self) -> bool:
        # Section 1: X-API-KEY, or a session as X-Metabase-Session or the metabase.SESSION
        # cookie (a cookie jar alone authenticates).
        standin = self.server_standin
        key = self.headers.get("X-API-KEY")
        if key is not None:
            return key == standin.api_key
        session = self.headers.get("X-Metabase-Session")
        if session is None:
            cookie = self.headers.get("Cookie") or ""
            match = re.search(r"metabase\.SESSION=([0-9a-f-]+)", cookie)
            session = match.group(1) if match else None
        return session is not None and session in standin.sessions

    def _dispatch(self, method: str) -> None:
        standin = self.server_standin
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query)
        raw = self._read_body() if method in ("POST", "PUT", "DELETE") else b""
        body: dict[str, Any] | None = None
        if raw and (self.headers.get("Content-Type") or "").startswith("application/json"):
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, "Malformed JSON in request body.")
                return
        standin.requests.append((method, path, body))
        fault = standin.take_fault(method, path)
        # Section 2: 429/502/503 (with or without Retry-After) come from proxies and load
        # balancers; section 8 / 10.7: a reset connection mid-query.
        if fault is not None and fault.kind == "reset":
            self._reset()
            return
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._send(fault.status, fault.body, fault.content_type, headers=headers)
            return
        try:
            self._route(method, path, query, raw, body, fault)
        except HttpAnswer as answer:
            if isinstance(answer.body, str):
                self._send(answer.status, answer.body, answer.content_type)
            else:
                self._send_json(answer.status, answer.body)

    def _reset(self) -> None:
        # SO_LINGER 0: the close sends a TCP reset instead of a clean end.
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        self.connection.close()
        self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- routes -------------------------------------------------------------------------

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        raw: bytes,
        body: dict[str, Any] | None,
        fault: Fault | None,
    ) -> None:
        standin = self.server_standin
        # Section 3: /api/health needs no auth; section 2: unknown routes are 404 "API
        # endpoint does not exist.", missing credentials 401 "Unauthenticated" (plain text).
        if path == "/api/health" and method == "GET":
            self._send_json(200, {"status": "ok"})
            return
        if path == "/api/session" and method == "POST":
            self._login(body)
            return
        if not path.startswith("/api/"):
            raise HttpAnswer(404, "API endpoint does not exist.")
        if not self._authenticated():
            raise HttpAnswer(401, "Unauthenticated")
        if path == "/api/session" and method == "DELETE":
            # Section 1: logout answers 204.
            standin.sessions.discard(self.headers.get("X-Metabase-Session") or "")
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if method == "GET":
            self._get(path, query)
            return
        if method == "POST" and path == "/api/dataset":
            self._dataset(body, fault)
            return
        match = re.fullmatch(r"/api/dataset/([a-z]+)", path)
        if method == "POST" and match and match.group(1) in EXPORT_FORMATS:
            self._export(match.group(1), raw, body, fault)
            return
        raise HttpAnswer(404, "API endpoint does not exist.")

    def _login(self, body: dict[str, Any] | None) -> None:
        # Section 1: 400 for a blank field, 401 with the same body for a wrong password or an
        # unknown user, throttling after 10 failures, 200 {"id": ...} plus the session cookie.
        standin = self.server_standin
        body = body or {}
        errors = {
            key: "value must be a non-blank string."
            for key in ("username", "password")
            if not isinstance(body.get(key), str) or not body[key].strip()
        }
        if errors:
            raise HttpAnswer(400, {"errors": errors, "specific-errors": errors}, "application/json")
        username = body["username"]
        failures = standin.login_failures.get(username, 0)
        if failures >= 10:
            raise HttpAnswer(
                401,
                {
                    "errors": {
                        "username": "Too many attempts! You must wait 15 seconds before "
                        "trying again."
                    }
                },
            )
        if username != standin.username or body["password"] != standin.password:
            standin.login_failures[username] = failures + 1
            raise HttpAnswer(401, {"errors": {"password": "did not match stored password"}})
        session = str(uuid.uuid4())
        standin.sessions.add(session)
        self._send_json(
            200,
            {"id": session},
            headers={"Set-Cookie": f"metabase.SESSION={session}; HttpOnly; Path=/"},
        )

    def _get(self, path: str, query: dict[str, list[str]]) -> None:
        # Section 3: the discovery endpoints; /api/database is not paginated; a non-numeric
        # id is 404 "API endpoint does not exist.", an unknown one 404 "Not found." (2).
        standin = self.server_standin
        if path == "/api/user/current":
            self._send_json(200, {"id": 1, "email": standin.username, "is_superuser": False})
            return
        if path == "/api/database":
            include = query.get("include", [""])[0]
            data = []
            for db in standin.databases.values():
                item = db.as_api()
                if include == "tables":
                    item["tables"] = [t.as_api() for t in db.tables.values()]
                data.append(item)
            self._send_json(200, {"data": data, "total": len(data)})
            return
        if path == "/api/table":
            tables = [t.as_api() for db in standin.databases.values() for t in db.tables.values()]
            self._send_json(200, tables)
            return
        match = re.fullmatch(r"/api/(database|table)/([^/]+)(?:/(.*))?", path)
        if not match:
            raise HttpAnswer(404, "API endpoint does not exist.")
        kind, raw_id, rest = match.group(1), match.group(2), match.group(3)
        if not raw_id.isdigit():
            raise HttpAnswer(404, "API endpoint does not exist.")
        object_id = int(raw_id)
        if kind == "database":
            self._get_database(object_id, rest, query)
        else:
            self._get_table(object_id, rest)

    def _get_database(self, db_id: int, rest: str | None, query: dict[str, list[str]]) -> None:
        standin = self.server_standin
        db = standin.databases.get(db_id)
        if rest is not None and not re.fullmatch(r"metadata|schemas|schema/.*", rest):
            raise HttpAnswer(404, "API endpoint does not exist.")
        if db is None:
            raise HttpAnswer(404, "Not found.")
        # Section 3: metadata leaves out hidden tables and sensitive fields unless
        # include_hidden=true; a table without schema is listed under "".
        hidden = query.get("include_hidden", ["false"])[0] == "true"

        def visible(t: StandinTable) -> bool:
            return hidden or t.visibility_type is None

        if rest is None:
            item = db.as_api()
            include = query.get("include", [""])[0]
            if include in ("tables", "tables.fields"):
                item["tables"] = [
                    t.as_api(with_fields=include == "tables.fields") for t in db.tables.values()
                ]
            self._send_json(200, item)
        elif rest == "metadata":
            item = db.as_api()
            tables = []
            for t in db.tables.values():
                if not visible(t):
                    continue
                data = t.as_api(rows=self._row_count(db, t))
                data["fields"] = [
                    f.as_api() for f in t.fields if hidden or f.visibility_type != "sensitive"
                ]
                data["segments"], data["metrics"] = [], []
                tables.append(data)
            item["tables"] = tables
            self._send_json(200, item)
        elif rest == "schemas":
            self._send_json(200, sorted({t.schema or "" for t in db.tables.values()}))
        else:
            schema = rest[len("schema/") :]
            tables = [
                t.as_api() for t in db.tables.values() if (t.schema or "") == schema and visible(t)
            ]
            self._send_json(200, tables)

    @staticmethod
    def _row_count(db: StandinDatabase, table: StandinTable) -> int:
        with db.lock:
            return int(
                db.connection.execute(f"SELECT COUNT(*) FROM {table.sql_name}").fetchone()[0]
            )

    def _get_table(self, table_id: int, rest: str | None) -> None:
        standin = self.server_standin
        if rest not in (None, "query_metadata"):
            raise HttpAnswer(404, "API endpoint does not exist.")
        try:
            table = standin.table(table_id)
        except KeyError:
            raise HttpAnswer(404, "Not found.") from None
        db = standin.databases[table.db_id]
        data = table.as_api(rows=self._row_count(db, table))
        db_info = db.as_api()
        data["db"] = db_info
        if rest is None:
            pk = next((f for f in table.fields if f.semantic_type == "type/PK"), None)
            data["pk_field"] = pk.id if pk else None
        else:
            data["fields"] = [f.as_api() for f in table.fields]
            data["segments"], data["metrics"] = [], []
        self._send_json(200, data)

    # -- query execution ----------------------------------------------------------------

    def _failed_body(self, body: dict[str, Any], exc: QueryFailed) -> dict[str, Any]:
        # Section 8: the failed-query body.
        return {
            "status": "failed",
            "error": str(exc),
            "error_type": exc.error_type,
            "class": "class org.h2.jdbc.JdbcSQLSyntaxErrorException",
            "state": "42000",
            "stacktrace": [],
            "via": [
                {
                    "status": "failed",
                    "class": "class clojure.lang.ExceptionInfo",
                    "error": f"Error executing query: {exc}",
                    "error_type": exc.error_type,
                    "ex-data": {},
                }
            ],
            "json_query": body,
            "data": {"rows": [], "cols": []},
            "row_count": 0,
            "running_time": 0,
            "context": "ad-hoc",
            "database_id": body.get("database"),
            "started_at": _now(),
        }

    def _dataset(self, body: dict[str, Any] | None, fault: Fault | None) -> None:
        standin = self.server_standin
        if body is None:
            raise HttpAnswer(
                400, {"errors": {"database": "value must be an integer."}}, "application/json"
            )
        started = time.perf_counter()
        try:
            cols, rows, info = standin.run(body, export=False)
        except QueryFailed as exc:
            # Section 8: 202 in v0.47-v0.49, 400 for query errors on current master.
            failed = self._failed_body(body, exc)
            status = 202 if standin.failure_style == "old" else 400
            self._send_json(status, failed, close=True)
            return
        # Section 7: js-int-to-string? is on unless the body turns it off.
        middleware = (body.get("middleware") or {}) if standin.honour_middleware else {}
        stringify = middleware.get("js-int-to-string?", True) is not False
        pk_fk = info["pk_fk"] if body.get("type") == "query" else set()
        encoded = standin.encode_dataset_rows(rows, cols, stringify=stringify, pk_fk=pk_fk)
        data: dict[str, Any] = {
            "rows": encoded,
            "cols": cols,
            "native_form": {"query": info["native"], "params": None},
            "results_timezone": standin.results_timezone,
            "results_metadata": {"columns": cols},
            "insights": None,
        }
        if info["rows_truncated"] is not None:
            data["rows_truncated"] = info["rows_truncated"]
        # Section 4: success is 202, chunked, Connection: close, keys in this order.
        result = {
            "data": data,
            "database_id": body["database"],
            "started_at": _now(),
            "json_query": body,
            "average_execution_time": None,
            "status": "completed",
            "context": "ad-hoc",
            "row_count": len(encoded),
            "running_time": int((time.perf_counter() - started) * 1000),
        }
        text = json.dumps(result, ensure_ascii=False)
        if fault is not None and fault.kind == "cut":
            self._cut(text)
            return
        # Section 8: older releases append the error object to a half-streamed body.
        if fault is not None and fault.kind == "append_error":
            half = text[: text.index('"rows": [') + len('"rows": [')]
            error = json.dumps(
                self._failed_body(body, QueryFailed("Connection reset by peer", "db"))
            )
            self._send(202, half + error, "application/json; charset=utf-8", close=True)
            return
        self._send(202, text, "application/json; charset=utf-8", close=True)

    def _cut(self, text: str) -> None:
        """Headers of a success and part of the body, then the connection ends mid-stream
        (section 8: master aborts the connection when a query fails after streaming began)."""
        data = text.encode("utf-8")
        self.send_response(202)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        piece = data[: max(1, len(data) // 2)]
        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _export(
        self, fmt: str, raw: bytes, body: dict[str, Any] | None, fault: Fault | None
    ) -> None:
        standin = self.server_standin
        # Section 6: the query comes as the form field ``query`` (every release); master also
        # takes a JSON body {"query": {...}}.
        query: dict[str, Any] | None = None
        if body is not None and standin.failure_style == "new":
            query = body.get("query") if isinstance(body.get("query"), dict) else None
        elif body is None:
            form = parse_qs(raw.decode("utf-8"))
            if "query" in form:
                try:
                    query = json.loads(form["query"][0])
                except ValueError:
                    raise HttpAnswer(400, "Malformed JSON in request body.") from None
        if query is None:
            raise HttpAnswer(
                400, {"errors": {"query": "value must be a valid JSON string."}}, "application/json"
            )
        content_type = "text/csv" if fmt == "csv" else "application/json; charset=utf-8"
        try:
            cols, rows, _info = standin.run(query, export=True)
        except QueryFailed as exc:
            # Section 8: old exports answer 200 with the JSON error under the export's
            # Content-Type; master answers 400 without json_query.
            failed = self._failed_body(query, exc)
            if standin.failure_style == "old":
                self._send(200, json.dumps(failed), content_type)
            else:
                failed.pop("json_query", None)
                self._send_json(400, failed)
            return
        # Section 6: the export's headers, JSON rows keyed by display_name (a later column
        # with the same name wins), CSV with a header of display names and \n line ends.
        headers = {
            "Content-Disposition": f'attachment; filename="query_result_{_now()}.{fmt}"',
            "Cache-Control": "max-age=0, no-cache, must-revalidate, proxy-revalidate",
            "Expires": "Tue, 03 Jul 2001 06:00:00 GMT",
            "X-Accel-Buffering": "no",
        }
        names = [c["display_name"] for c in cols]
        if fmt == "json":
            records = []
            for row in rows:
                record = {}
                for col, name, value in zip(cols, names, row, strict=True):
                    record[name] = standin.encode_export_value(value, col)
                records.append(json.dumps(record, ensure_ascii=False))
            text = "[\n" + ",\n".join(records) + "\n]"
        else:
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(names)
            for row in rows:
                writer.writerow(
                    [
                        _csv_value(standin.encode_export_value(v, c))
                        for v, c in zip(row, cols, strict=True)
                    ]
                )
            text = out.getvalue()
        if fault is not None and fault.kind == "cut":
            self._cut(text)
            return
        self._send(200, text, content_type, headers, close=True)


def _utc_text(stored: str) -> str:
    """``2024-01-02 03:04:05.250000`` (stored, UTC) -> ``2024-01-02T03:04:05.25Z``."""
    text = stored.replace(" ", "T", 1)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "Z"


def _now() -> str:
    return datetime.now(tz=ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@functools.lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _bind_variables(body: dict[str, Any], sql: str) -> tuple[str, dict[str, Any]]:
    """Native ``{{name}}`` variables as SQLite named parameters bound to the request's
    ``parameters`` (as Metabase binds template tags; the text is never pasted)."""
    tags = (body.get("native") or {}).get("template-tags") or {}
    values: dict[str, Any] = {}
    for parameter in body.get("parameters") or []:
        target = parameter.get("target") or []
        if len(target) == 2 and target[0] == "variable" and target[1][0] == "template-tag":
            values[str(target[1][1])] = parameter.get("value")
    bound: dict[str, Any] = {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in tags or name not in values:
            raise QueryFailed(
                f"You'll need to pick a value for '{name}' before this query can run."
            )
        bound[f"mb_{name}"] = values[name]
        return f":mb_{name}"

    return re.sub(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", substitute, sql), bound


def _sqlite_type(base_type: str) -> str:
    if base_type in ("type/Integer", "type/BigInteger", "type/Boolean"):
        return "INTEGER"
    if base_type in ("type/Float", "type/Decimal"):
        return "REAL"
    return "TEXT"


def _to_sqlite(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _infer(values: Sequence[Any]) -> str:
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return "type/Boolean"
    if isinstance(sample, int):
        return "type/BigInteger" if abs(sample) > 2**31 else "type/Integer"
    if isinstance(sample, float):
        return "type/Float"
    if isinstance(sample, str):
        return "type/Text"
    return "type/*"


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    return str(value)


def _java_double(value: float) -> str:
    """Java's ``Double.toString``: plain between 1e-3 and 1e7, else ``1.2345678E7``."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    magnitude = abs(value)
    if value == 0 or 1e-3 <= magnitude < 1e7:
        return repr(float(value))
    digits = Decimal(repr(value)).normalize()
    sign, numerals, exponent = digits.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, numerals))
    power = len(numerals) - 1 + exponent
    mantissa = text[0] + "." + (text[1:] or "0")
    return ("-" if sign else "") + f"{mantissa}E{power}"


_OPS = {"=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def _filter_sql(clause: list[Any], resolve: Any) -> tuple[str, list[Any]]:
    op = clause[0]
    if op in ("and", "or"):
        parts, params = [], []
        for sub in clause[1:]:
            text, sub_params = _filter_sql(sub, resolve)
            parts.append(f"({text})")
            params.extend(sub_params)
        return f" {op.upper()} ".join(parts), params
    if op in _OPS:
        return f'"{resolve(clause[1]).name}" {_OPS[op]} ?', [clause[2]]
    if op == "is-null":
        return f'"{resolve(clause[1]).name}" IS NULL', []
    if op == "not-null":
        return f'"{resolve(clause[1]).name}" IS NOT NULL', []
    raise QueryFailed(f"Unsupported filter clause: {op}")


def sample_rows(count: int, start: int = 1) -> Iterable[tuple[Any, ...]]:
    """Deterministic order rows: id, customer (unicode), amount, big id, paid, created, day."""
    names = ["Zoë", "Åsa", "José", "Łukasz", "Nguyễn", "李雷", "Ольга", None]
    base = datetime(2024, 1, 1, 0, 0, 0)
    for i in range(start, start + count):
        yield (
            i,
            names[i % len(names)],
            None if i % 11 == 0 else round(i * 1.25, 2),
            JS_MAX_SAFE + i,
            None if i % 7 == 0 else bool(i % 2),
            base + timedelta(minutes=37 * i, seconds=i % 60),
            (base + timedelta(days=i % 400)).date(),
        )


SAMPLE_COLUMNS: list[tuple[str, str] | tuple[str, str, dict[str, Any]]] = [
    ("id", "type/BigInteger", {"semantic_type": "type/PK", "display_name": "ID"}),
    ("customer", "type/Text", {"semantic_type": "type/Name"}),
    ("amount", "type/Float"),
    ("big_id", "type/BigInteger"),
    ("paid", "type/Boolean"),
    ("created_at", "type/DateTime"),
    ("order_day", "type/Date"),
]


def main() -> None:
    """Serve a database ``Bench`` with table ``PUBLIC.ORDERS`` of ``--rows`` rows."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-gzip", action="store_true")
    args = parser.parse_args()
    standin = MetabaseStandin(gzip_responses=not args.no_gzip)
    db_id = standin.add_database("Bench")
    table_id = standin.add_table(
        db_id, "ORDERS", SAMPLE_COLUMNS, sample_rows(args.rows), schema="PUBLIC"
    )
    url = standin.start()
    print(
        json.dumps(
            {
                "base_url": url,
                "api_key": standin.api_key,
                "database_id": db_id,
                "table_id": table_id,
            }
        ),
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
