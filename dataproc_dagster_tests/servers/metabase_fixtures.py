"""Pytest fixtures around the stand-in Metabase: a server with known data, and clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest

from dataproc_dagster.sources.metabase.client import MetabaseClient
from dataproc_dagster.sources.metabase.retry import metabase_retry_policy
from dataproc_dagster_tests.servers.metabase_standin import (
    SAMPLE_COLUMNS,
    MetabaseStandin,
    sample_rows,
)

ORDERS_ROWS = 5000
# A row count that no page size or cap divides, for the download-limit tests.
BIG_ROWS = 5321


@dataclass
class StandinSetup:
    """A running stand-in and the ids of what it holds."""

    server: MetabaseStandin
    sales_id: int
    orders_id: int
    analytics_orders_id: int
    empty_id: int
    hidden_id: int
    people_id: int
    types_id: int

    @property
    def url(self) -> str:
        """Base URL."""
        return self.server.base_url

    def client(self, **options: Any) -> MetabaseClient:
        """A client with the API key and quick retries.

        ``max_retries``, ``backoff`` and ``max_retry_wait`` are the resource's retry options,
        turned into the shared retry policy as the resource does.
        """
        retry = {
            name: options.pop(name)
            for name in ("max_retries", "backoff", "max_retry_wait")
            if name in options
        }
        defaults: dict[str, Any] = {
            "api_key": self.server.api_key,
            "retry": metabase_retry_policy(**{"backoff": 0.01, **retry}),
        }
        defaults.update(options)
        return MetabaseClient(self.url, **defaults)

    def assert_native_window(self, start: str, end: str) -> None:
        """Every native query received kept its ``{{start}}``/``{{end}}`` variables and sent
        the window's bounds as their parameters (never as SQL text)."""
        bodies = [b for b in self.server.dataset_bodies() if b.get("type") == "native"]
        assert bodies, "no native query reached the stand-in"
        for body in bodies:
            sql = body["native"]["query"]
            assert "{{start}}" in sql and "{{end}}" in sql and start not in sql
            values = {p["target"][1][1]: p["value"] for p in body["parameters"]}
            assert values == {"start": start, "end": end}


TYPES_ROWS: list[tuple[Any, ...]] = [
    (
        1,
        2**62 + 7,
        "Zoë \u2603 \U0001f600",
        1.5,
        True,
        date(2024, 1, 2),
        datetime(2024, 1, 2, 3, 4, 5, 250000),
        '{"a": [1, 2]}',
        "12:30:00",
    ),
    (2, None, None, None, None, None, None, None, None),
    (3, -(2**53) - 1, "", -0.25, False, date(1900, 12, 31), datetime(2024, 1, 3), "[]", "00:00:00"),
]
TYPES_COLUMNS: list[Any] = [
    ("id", "type/Integer", {"semantic_type": "type/PK"}),
    ("big", "type/BigInteger"),
    ("label", "type/Text"),
    ("ratio", "type/Float"),
    ("flag", "type/Boolean"),
    ("day", "type/Date"),
    ("moment", "type/DateTime"),
    ("payload", "type/JSON"),
    ("clock", "type/Time"),
]


def build_standin(**options: Any) -> StandinSetup:
    """Create (not start) a stand-in with database Sales and a second database Ops."""
    server = MetabaseStandin(**options)
    sales = server.add_database("Sales")
    orders = server.add_table(
        sales, "ORDERS", SAMPLE_COLUMNS, sample_rows(ORDERS_ROWS), schema="PUBLIC"
    )
    analytics_orders = server.add_table(
        sales, "ORDERS", SAMPLE_COLUMNS, sample_rows(10), schema="ANALYTICS"
    )
    empty = server.add_table(sales, "EMPTY", SAMPLE_COLUMNS, (), schema="PUBLIC")
    hidden = server.add_table(
        sales,
        "AUDIT_LOG",
        [("id", "type/Integer")],
        [(1,)],
        schema="PUBLIC",
        visibility_type="hidden",
    )
    people = server.add_table(
        sales,
        "PEOPLE",
        [
            ("id", "type/Integer", {"semantic_type": "type/PK"}),
            ("name", "type/Text"),
            ("password_hash", "type/Text", {"visibility_type": "sensitive"}),
        ],
        [(i, f"person {i}", f"hash{i}") for i in range(1, 31)],
        schema="PUBLIC",
    )
    ops = server.add_database("Ops", engine="sqlite")
    types = server.add_table(ops, "types", TYPES_COLUMNS, TYPES_ROWS)
    return StandinSetup(server, sales, orders, analytics_orders, empty, hidden, people, types)


@pytest.fixture
def metabase() -> Iterator[StandinSetup]:
    """A running stand-in Metabase (current release behaviour: failures as HTTP 400)."""
    setup = build_standin()
    setup.server.start()
    yield setup
    setup.server.stop()


@dataclass
class CappedSetup:
    """A running stand-in whose admin set a download row limit, and its 5,321-row table."""

    setup: StandinSetup
    big_id: int
    limit: int


@pytest.fixture(params=[1500, 2500], ids=lambda limit: f"download_limit_{limit}")
def download_capped(request: pytest.FixtureRequest) -> Iterator[CappedSetup]:
    """A Metabase whose admin set the download row limit to 1,500 or 2,500 (not round numbers
    a guess would recognise), with table ``PUBLIC.BIG_ORDERS`` of 5,321 rows in ``Sales``."""
    limit = int(request.param)
    setup = build_standin(download_row_limit=limit)
    big = setup.server.add_table(
        setup.sales_id, "BIG_ORDERS", SAMPLE_COLUMNS, sample_rows(BIG_ROWS), schema="PUBLIC"
    )
    setup.server.start()
    yield CappedSetup(setup, big, limit)
    setup.server.stop()


@pytest.fixture
def old_metabase() -> Iterator[StandinSetup]:
    """A stand-in behaving like v0.47: failures as HTTP 202, PK/FK integers as strings."""
    setup = build_standin(failure_style="old", int_style="v047")
    setup.server.start()
    yield setup
    setup.server.stop()
