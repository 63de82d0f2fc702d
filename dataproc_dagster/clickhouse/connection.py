"""A ClickHouse connection: one URL picks the engine, embedded chDB or a ClickHouse server.

Plain Python (no Dagster): the migrations runner, the loader's writer and the integrity checks
use it directly; :class:`~dataproc_dagster.clickhouse.resource.ClickHouseResource` is the Dagster
resource that builds one per step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import clickhouse_connect
import pandas as pd
import pyarrow as pa
from clickhouse_connect.driver.binding import bind_query
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from dataproc_dagster.clickhouse.embedded_lock import embedded_directory_lock
from dataproc_dagster.clickhouse.sql import quote_identifier
from dataproc_dagster.clickhouse.sql_safety import check_single_statement
from dataproc_dagster.core.config_checks import refuse_url_credentials, url_parts
from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.core.redaction import scrub
from dataproc_dagster.core.settings import CLICKHOUSE_SCHEMES, FrameworkSettings, get_settings

Parameters = dict[str, Any] | Sequence[Any] | None

DEFAULT_USER = "default"
DEFAULT_DATABASE = "default"
DEFAULT_LOCK_TIMEOUT = 600.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_SEND_RECEIVE_TIMEOUT = 300.0


@dataclass(frozen=True)
class ClickHouseConnection:
    """ClickHouse through clickhouse-connect.

    ``url`` picks the engine: ``chdb:///dir`` runs the embedded ClickHouse engine (chDB) on a
    directory, ``http(s)://host:port`` talks to a server or cluster. Nothing connects when the
    object is built: a client is opened by :meth:`get_client` and closed after the block. On
    the embedded engine a cross-process lock serialises the users of the directory.

    Args:
        url: ``chdb:///path`` for the embedded engine, ``http(s)://host:port`` for a server.
        user: User name (server only).
        password: Password (server only); empty = ``CLICKHOUSE_PASSWORD`` read when connecting.
        database: Default database.
        lock_timeout: Seconds to wait for the embedded directory lock.
        connect_timeout: Connect timeout, seconds (server).
        send_receive_timeout: Read timeout, seconds (server).
        holder: Who uses the engine (run id), shown to anyone waiting for the embedded lock.
    """

    url: str
    user: str = DEFAULT_USER
    password: str = field(default="", repr=False)
    database: str = DEFAULT_DATABASE
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    send_receive_timeout: float = DEFAULT_SEND_RECEIVE_TIMEOUT
    holder: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls, settings: FrameworkSettings, *, with_password: bool = False
    ) -> ClickHouseConnection:
        """The connection the settings describe.

        Args:
            settings: The framework settings.
            with_password: Copy ``CLICKHOUSE_PASSWORD`` into the object now; otherwise it is
                read when a client connects.
        """
        password = settings.clickhouse_password.get_secret_value() if with_password else ""
        return cls(
            url=settings.clickhouse_url,
            user=settings.clickhouse_user,
            password=password,
            database=settings.clickhouse_database,
            lock_timeout=settings.clickhouse_lock_timeout,
        )

    @property
    def is_embedded(self) -> bool:
        """True for the embedded engine (``chdb://``)."""
        return self._scheme() == "chdb"

    @property
    def embedded_path(self) -> Path:
        """The chDB directory of an embedded URL."""
        parts = urlsplit(self.url)
        raw = (parts.netloc + parts.path) if parts.netloc not in ("", "localhost") else parts.path
        if not raw.strip("/"):
            # "chdb://" would put the engine's folders into the working directory, "chdb:///"
            # into the file system root.
            raise ConfigError(
                f"the embedded ClickHouse URL {self.url!r} names no directory",
                source="CLICKHOUSE_URL",
                fix="use chdb:///path/to/dir, or leave CLICKHOUSE_URL empty for "
                "<DATAPROC_DATA_DIR>/clickhouse",
            )
        return Path(raw).expanduser().resolve()

    def describe(self) -> str:
        """Where the data lives, without credentials."""
        if self.is_embedded:
            return f"embedded ClickHouse at {self.embedded_path}"
        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"ClickHouse server {parts.scheme}://{host}{port} (database {self.database})"

    def _scheme(self) -> str:
        parts = url_parts(
            self.url,
            option="CLICKHOUSE_URL",
            schemes=CLICKHOUSE_SCHEMES,
            example="chdb:///path (embedded) or http://localhost:8123 (a server)",
        )
        # The resource's config is stored with every run: a password in it would be too.
        refuse_url_credentials(
            self.url,
            option="the ClickHouse resource's url",
            fix="put the user in `user` and the password in CLICKHOUSE_PASSWORD (or "
            "password=EnvVar('NAME')); CLICKHOUSE_URL itself may hold user:password@, the "
            "settings move them out of the URL",
        )
        return parts.scheme

    @contextmanager
    def get_client(self, *, step: str | None = None) -> Iterator[Client]:
        """Open a client for the block and close it after.

        On the embedded engine the directory lock is held for the whole block.

        Args:
            step: Name recorded with the lock, shown to anyone waiting for it.

        Raises:
            SourceError: When the engine or server cannot be reached.
            LockTimeoutError: When another process holds the embedded directory too long.
        """
        if self.is_embedded:
            holder = dict(self.holder)
            if step:
                holder["step"] = step
            with embedded_directory_lock(
                self.embedded_path, timeout=self.lock_timeout, holder=holder
            ):
                client = _one_statement_per_call(self._open_embedded())
                try:
                    yield client
                finally:
                    client.close()
        else:
            client = _one_statement_per_call(self._open_server())
            try:
                yield client
            except OperationalError as exc:  # the connection broke, not an SQL error
                raise SourceError(
                    f"ClickHouse stopped answering: {scrub(str(exc), (self._password(),))[:1000]}",
                    source=self.describe(),
                    fix="check that the server is up (a local one: `./run.sh clickhouse "
                    "status`) and re-run the step; a load that had not begun publishing left "
                    "its target unchanged, one that had is finished by the retry",
                ) from None
            finally:
                # Close the pooled keep-alive connections too: client.close() leaves them
                # open, which holds a stopping server for seconds.
                client.close_connections()
                client.close()

    def _open_embedded(self) -> Client:
        path = self.embedded_path
        path.mkdir(parents=True, exist_ok=True)
        try:
            client = clickhouse_connect.get_client(interface="chdb", path=str(path))
        except Exception as exc:  # chDB reports engine start failures as ProgrammingError
            raise SourceError(
                f"cannot open the embedded ClickHouse: {exc}",
                source=str(path),
                fix="make sure no other program has this directory open, or set CLICKHOUSE_URL "
                "to another chdb:/// directory",
            ) from exc
        if self.database and self.database != "default":
            client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.database)}")
            client.database = self.database
        return client

    def _password(self) -> str:
        if self.password:
            return self.password
        return get_settings().clickhouse_password.get_secret_value()

    def _open_server(self) -> Client:
        parts = urlsplit(self.url)
        options: dict[str, Any] = dict(parse_qsl(parts.query))
        try:
            return clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                secure=parts.scheme == "https",
                username=self.user,
                password=self._password(),
                database=self.database,
                connect_timeout=self.connect_timeout,
                send_receive_timeout=self.send_receive_timeout,
                **options,
            )
        except Exception as exc:
            detail = scrub(str(exc), (self._password(),))
            raise SourceError(
                f"cannot reach ClickHouse: {type(exc).__name__}: {detail}",
                source=self.describe(),
                fix=_server_fix(detail, self),
            ) from None

    # Convenience calls; each opens and closes a client. Inside an op that makes several
    # calls, prefer one ``with resource.get_client() as client`` block.

    def query_df(
        self, sql: str, parameters: dict[str, Any] | Sequence[Any] | None = None
    ) -> pd.DataFrame:
        """Run a query and return the whole result as a DataFrame."""
        with self.get_client() as client:
            return client.query_df(sql, parameters=parameters)

    def query_rows(
        self, sql: str, parameters: dict[str, Any] | Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples."""
        with self.get_client() as client:
            return [tuple(row) for row in client.query(sql, parameters=parameters).result_rows]

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, ALTER, ...)."""
        with self.get_client() as client:
            return client.command(sql, parameters=parameters)

    @contextmanager
    def arrow_batches(
        self,
        sql: str,
        parameters: Parameters = None,
        *,
        batch_rows: int = 100_000,
        database: str | None = None,
        step: str | None = None,
    ) -> Iterator[Iterator[pa.RecordBatch]]:
        """Stream a query's result as Arrow record batches, block by block.

        On a server this is clickhouse-connect's ``query_arrow_stream``. On the embedded engine
        clickhouse-connect materializes Arrow results whole, so the query runs through chDB's
        own Arrow stream instead, which keeps memory flat in the result size. ``batch_rows`` is
        the block size asked for; the engine may return somewhat larger or smaller blocks.
        """
        if not self.is_embedded:
            with self.get_client(step=step) as client:
                if database:
                    client.database = database
                settings = {"max_block_size": batch_rows}
                with client.query_arrow_stream(sql, parameters, settings=settings) as stream:
                    yield iter(stream)
            return
        # chDB costs about 290 MB per process: only steps that run the embedded engine load it.
        import chdb

        holder = dict(self.holder)
        if step:
            holder["step"] = step
        check_single_statement(sql, source=self.describe())
        final_sql, bound = bind_query(sql, parameters)
        params = {k.removeprefix("param_"): v for k, v in bound.items()}
        with embedded_directory_lock(self.embedded_path, timeout=self.lock_timeout, holder=holder):
            self.embedded_path.mkdir(parents=True, exist_ok=True)
            connection = chdb.connect(str(self.embedded_path))
            try:
                target_db = database or self.database
                if target_db and target_db != "default":
                    connection.query(f"USE {quote_identifier(target_db)}")
                result = connection.send_query(str(final_sql), "Arrow", params=params)
                try:
                    yield iter(result.record_batch(rows_per_batch=batch_rows))
                finally:
                    result.close()
            finally:
                connection.close()

    def insert_chunks(
        self, table: str, chunks: Iterable[pd.DataFrame | pa.Table], database: str | None = None
    ) -> int:
        """Insert each chunk with one call; return the rows sent."""
        rows = 0
        with self.get_client() as client:
            for chunk in chunks:
                if isinstance(chunk, pa.Table):
                    client.insert_arrow(table, chunk, database=database)
                else:
                    client.insert_df(table, chunk, database=database)
                rows += len(chunk)
        return rows


class HasConnection(Protocol):
    """Anything that hands out a :class:`ClickHouseConnection` (the Dagster resource does)."""

    @property
    def connection(self) -> ClickHouseConnection:
        """The connection it stands for."""
        ...


def as_connection(clickhouse: ClickHouseConnection | HasConnection) -> ClickHouseConnection:
    """The plain connection of a connection or of a ClickHouse resource."""
    if isinstance(clickhouse, ClickHouseConnection):
        return clickhouse
    return clickhouse.connection


def _one_statement_per_call(client: Client) -> Client:
    """Make ``client.command`` and ``client.query`` refuse text holding several statements.

    The embedded engine runs every statement of one call; a value from configuration that
    smuggled in ``; DROP TABLE ...`` would run too. Binding happens after the check, so bound
    values may hold anything.
    """
    for name in ("command", "query"):
        original = getattr(client, name)

        def guarded(sql: str, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            check_single_statement(sql, source="ClickHouse command")
            return _original(sql, *args, **kwargs)

        setattr(client, name, guarded)
    return client


def _server_fix(detail: str, resource: ClickHouseConnection) -> str:
    """The fix for a failed connection, from the server's or the network's message."""
    text = detail.lower()
    if "authentication failed" in text or "code: 516" in text or "code: 192" in text:
        return (
            f"check CLICKHOUSE_USER (now {resource.user!r}) and CLICKHOUSE_PASSWORD; the user "
            "must exist on the server with that password"
        )
    if "unknown_database" in text or "code: 81" in text:
        return (
            f"create the database (CREATE DATABASE {resource.database}) or set "
            "CLICKHOUSE_DATABASE to an existing one"
        )
    if "ssl" in text or "certificate" in text or "wrong version number" in text:
        return (
            "use https:// for the server's TLS port (usually 8443) and http:// for its plain "
            "port (8123); for a private CA add ?ca_cert=/path/ca.pem to the URL"
        )
    return (
        "make sure the server is up and CLICKHOUSE_URL names its host and HTTP port (a local "
        "server: `./run.sh clickhouse start`, then use the URL it prints)"
    )
