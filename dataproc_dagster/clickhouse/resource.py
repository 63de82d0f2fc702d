"""``ClickHouseResource``: the Dagster resource of a :class:`ClickHouseConnection`."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from dataproc_dagster.clickhouse.connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_SEND_RECEIVE_TIMEOUT,
    ClickHouseConnection,
    Parameters,
)
from dataproc_dagster.core.settings import FrameworkSettings, get_settings

# The run tag naming the ClickHouse a run used (``describe()``: no credentials).
RUN_TAG = "dataproc/clickhouse"


class ClickHouseResource(ConfigurableResource):
    """ClickHouse through clickhouse-connect, as a Dagster resource.

    ``url`` picks the engine: ``chdb:///dir`` runs the embedded ClickHouse engine (chDB) on a
    directory, ``http(s)://host:port`` talks to a server or cluster. Nothing connects when the
    definitions load: a client is opened by :meth:`get_client` inside a step and closed after
    it. On the embedded engine a cross-process lock serialises the steps of concurrent runs.
    """

    # A field left out takes its setting when the resource is built, in the run's process: so
    # the launchpad may override one field (lock_timeout) without repeating the others.
    url: str = Field(
        default_factory=lambda: get_settings().clickhouse_url,
        description="chdb:///path for the embedded engine, http(s)://host:port for a server; "
        "default: CLICKHOUSE_URL",
    )
    user: str = Field(
        default_factory=lambda: get_settings().clickhouse_user,
        description="User name (server only); default: CLICKHOUSE_USER",
    )
    password: str = Field(
        default="",
        description="Password (server only); pass an EnvVar; empty = CLICKHOUSE_PASSWORD",
    )
    database: str = Field(
        default_factory=lambda: get_settings().clickhouse_database,
        description="Default database; default: CLICKHOUSE_DATABASE",
    )
    lock_timeout: float = Field(
        default_factory=lambda: get_settings().clickhouse_lock_timeout,
        description="Seconds a step waits for the embedded lock; default: CLICKHOUSE_LOCK_TIMEOUT",
    )
    connect_timeout: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT, description="Connect timeout, seconds (server)"
    )
    send_receive_timeout: float = Field(
        default=DEFAULT_SEND_RECEIVE_TIMEOUT, description="Read timeout, seconds (server)"
    )

    _holder: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: FrameworkSettings) -> ClickHouseResource:
        """Build the resource from the framework settings.

        The password is not put into the resource's config (which the UI shows): an empty
        ``password`` is read from ``CLICKHOUSE_PASSWORD`` (environment or ``.env``) when a step
        connects.
        """
        return cls(
            url=settings.clickhouse_url,
            user=settings.clickhouse_user,
            database=settings.clickhouse_database,
            lock_timeout=settings.clickhouse_lock_timeout,
        )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Remember which run uses the engine, to tell waiters who holds it; say which
        ClickHouse the run uses (a log line and the run tag ``dataproc/clickhouse``)."""
        run_id = context.run.run_id if context.run else ""
        self._holder = {"run": run_id} if run_id else {}
        where = self.where()
        if context.log is not None:
            context.log.info(f"ClickHouse: {where}")
        if run_id and context.instance is not None:
            tags = context.run.tags if context.run else {}
            if tags.get(RUN_TAG) != self.describe():
                context.instance.add_run_tags(run_id, {RUN_TAG: self.describe()})

    def where(self) -> str:
        """:meth:`describe`, plus where the URL came from when it is the default engine."""
        text = self.describe()
        if self.is_embedded and self.url == get_settings().clickhouse_url:
            set_to = os.environ.get("CLICKHOUSE_URL")
            if set_to is None:
                text += " (CLICKHOUSE_URL not set: the default)"
            elif not set_to.strip():
                text += " (CLICKHOUSE_URL is set but empty: the default)"
        return text

    @property
    def connection(self) -> ClickHouseConnection:
        """The plain connection this resource stands for."""
        return ClickHouseConnection(
            url=self.url,
            user=self.user,
            password=self.password,
            database=self.database,
            lock_timeout=self.lock_timeout,
            connect_timeout=self.connect_timeout,
            send_receive_timeout=self.send_receive_timeout,
            holder=dict(self._holder),
        )

    @property
    def is_embedded(self) -> bool:
        """True for the embedded engine (``chdb://``)."""
        return self.connection.is_embedded

    @property
    def embedded_path(self) -> Path:
        """The chDB directory of an embedded URL."""
        return self.connection.embedded_path

    def describe(self) -> str:
        """Where the data lives, without credentials."""
        return self.connection.describe()

    def get_client(self, *, step: str | None = None) -> AbstractContextManager[Client]:
        """Open a client for a ``with`` block (see :meth:`ClickHouseConnection.get_client`)."""
        return self.connection.get_client(step=step)

    def query_df(self, sql: str, parameters: Parameters = None) -> pd.DataFrame:
        """Run a query and return the whole result as a DataFrame."""
        return self.connection.query_df(sql, parameters)

    def query_rows(self, sql: str, parameters: Parameters = None) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples."""
        return self.connection.query_rows(sql, parameters)

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, ALTER, ...)."""
        return self.connection.command(sql, parameters)
