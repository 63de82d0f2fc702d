"""Whole tables and native queries past the 2000-row cap, from the stand-in Metabase."""
# ruff: noqa: F401, F811 - the stand-in fixtures are imported by name, then requested by name

from __future__ import annotations

import math
from collections.abc import Iterator

import pandas as pd
import pytest

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.sources.metabase.discovery import resolve_table, table_metadata
from dataproc_dagster.sources.metabase.native_reader import read_native
from dataproc_dagster.sources.metabase.paging import ReadStats
from dataproc_dagster.sources.metabase.table_reader import read_table
from dataproc_dagster_tests.servers.metabase_fixtures import (
    BIG_ROWS,
    ORDERS_ROWS,
    CappedSetup,
    StandinSetup,
    build_standin,
    download_capped,
    metabase,
    old_metabase,
)
from dataproc_dagster_tests.servers.metabase_standin import JS_MAX_SAFE, MetabaseStandin


@pytest.fixture
def capped_metabase() -> Iterator[StandinSetup]:
    """A Metabase that ignores request ``constraints``: every answer is capped at 2000 rows."""
    setup = build_standin(honour_constraints=False)
    setup.server.start()
    yield setup
    setup.server.stop()


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


def _assert_whole_orders(frame: pd.DataFrame, rows: int = ORDERS_ROWS) -> None:
    assert len(frame) == rows
    assert frame["id"].tolist() == list(range(1, rows + 1))  # whole and in order
    assert frame["big_id"].iloc[-1] == JS_MAX_SAFE + rows


@pytest.mark.parametrize("method", ["dataset", "export"])
def test_table_far_above_the_cap_comes_out_whole_and_in_order(
    metabase: StandinSetup, method: str
) -> None:
    stats = ReadStats(method, 1500)
    with metabase.client() as client:
        table = table_metadata(client, metabase.orders_id)
        frame = _concat(list(read_table(client, table, page_size=1500, method=method, stats=stats)))
    _assert_whole_orders(frame)
    assert stats.pages == 4 and stats.rows == ORDERS_ROWS
    bodies = [b for b in metabase.server.dataset_bodies() if "page" in b.get("query", {})]
    if method == "dataset":
        assert [b["query"]["page"] for b in bodies] == [
            {"page": p, "items": 1500} for p in (1, 2, 3, 4)
        ]
        order = bodies[0]["query"]["order-by"]
        assert order == [["asc", ["field", table.pk.id, None]]]  # type: ignore[union-attr]
    else:
        assert metabase.server.count("POST", "/api/dataset/json") == 4


def test_one_request_carries_a_big_page_when_constraints_are_honoured(
    metabase: StandinSetup,
) -> None:
    stats = ReadStats("dataset", 20_000)
    with metabase.client() as client:
        table = table_metadata(client, metabase.orders_id)
        frame = _concat(list(read_table(client, table, stats=stats)))
    _assert_whole_orders(frame)
    # The short page of 5000 could have been cut: one count confirms it, silently.
    assert stats.requests == 2 and stats.counts == 1 and stats.capped_pages == 0
    body = metabase.server.dataset_bodies()[-1]
    assert body["constraints"]["max-results-bare-rows"] == 1_048_575


def test_a_server_ignoring_constraints_still_yields_every_row(
    capped_metabase: StandinSetup,
) -> None:
    messages: list[str] = []
    stats = ReadStats("dataset", 20_000)
    with capped_metabase.client() as client:
        table = table_metadata(client, capped_metabase.orders_id)
        frame = _concat(list(read_table(client, table, stats=stats, log=messages.append)))
    _assert_whole_orders(frame)
    assert stats.capped_pages == 1
    assert "page 1 returned 2000 of 20000 rows but the source counts 5000 rows" in messages[0]
    assert "reading on in pages of 2000" in messages[0]


def test_limit_stops_early_and_exactly(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        table = table_metadata(client, metabase.orders_id)
        frame = _concat(list(read_table(client, table, limit=2500, page_size=1000)))
    assert frame["id"].tolist() == list(range(1, 2501))
    assert len(metabase.server.dataset_bodies()) == 3


def test_sensitive_fields_are_left_out_and_columns_can_be_chosen(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        people = table_metadata(client, metabase.people_id)
        frame = _concat(list(read_table(client, people)))
        picked = _concat(list(read_table(client, people, columns=["name"], order_by=["name"])))
        with pytest.raises(ConfigError, match=r"'nope' is not a field of table PUBLIC\.PEOPLE"):
            list(read_table(client, people, columns=["nope"]))
    assert list(frame.columns) == ["id", "name"] and len(frame) == 30
    assert list(picked.columns) == ["name"] and picked["name"].iloc[0] == "person 1"


def test_empty_table_yields_no_rows(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        table = table_metadata(client, metabase.empty_id)
        assert list(read_table(client, table)) == []


@pytest.mark.parametrize("method", ["dataset", "export"])
def test_native_query_is_paged_with_the_users_order_by(
    capped_metabase: StandinSetup, method: str
) -> None:
    sql = "SELECT id, customer, big_id FROM PUBLIC.ORDERS WHERE id > 100;"
    stats = ReadStats(method, 1000)
    with capped_metabase.client() as client:
        frames = list(
            read_native(
                client,
                capped_metabase.sales_id,
                sql,
                order_by="id",
                page_size=1000,
                method=method,
                stats=stats,
            )
        )
    frame = _concat(frames)
    assert frame["id"].tolist() == list(range(101, ORDERS_ROWS + 1))
    assert frame["big_id"].tolist()[0] == JS_MAX_SAFE + 101
    if method == "dataset":
        texts = [b["native"]["query"] for b in capped_metabase.server.dataset_bodies()]
        assert texts[1].endswith("ORDER BY id LIMIT 1000 OFFSET 1000")
    else:
        assert capped_metabase.server.count("POST", "/api/dataset/json") == 5


def test_native_query_without_order_by_fails_rather_than_return_a_capped_result(
    capped_metabase: StandinSetup,
) -> None:
    with capped_metabase.client() as client, pytest.raises(SourceError) as caught:
        list(read_native(client, capped_metabase.sales_id, "SELECT id FROM PUBLIC.ORDERS"))
    text = str(caught.value)
    assert "returned 2000 rows" in text and "set order_by" in text
    assert "SELECT id FROM PUBLIC.ORDERS" in text


def test_native_query_without_order_by_is_one_request_when_caps_are_raised(
    metabase: StandinSetup,
) -> None:
    with metabase.client() as client:
        frame = _concat(
            list(read_native(client, metabase.sales_id, "SELECT id FROM PUBLIC.ORDERS"))
        )
        small = _concat(
            list(read_native(client, metabase.sales_id, "SELECT id FROM PUBLIC.ORDERS", limit=10))
        )
    assert len(frame) == ORDERS_ROWS and len(metabase.server.dataset_bodies()) == 2
    assert small["id"].tolist() == list(range(1, 11))


def test_types_unicode_nulls_and_big_integers(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        table = table_metadata(client, metabase.types_id)
        frame = _concat(list(read_table(client, table)))
        exported = _concat(list(read_table(client, table, method="export")))
    for result in (frame, exported):
        assert result["big"].tolist()[0] == 2**62 + 7
        assert result["big"].tolist()[2] == -(2**53) - 1
        assert result["label"].tolist()[0] == "Zoë \u2603 \U0001f600"
        assert result["label"].tolist()[2] == ""  # empty string is not null
        assert result.iloc[1].drop("id").isna().all()  # the row of nulls stays null
        assert result["flag"].tolist()[0] is True and result["flag"].tolist()[2] is False
        assert str(result["moment"].dtype) == "datetime64[ns, UTC]"
        assert result["moment"][0] == pd.Timestamp("2024-01-02T03:04:05.25Z")
        assert result["moment"][2] == pd.Timestamp("2024-01-03T00:00:00Z")  # midnight
        assert result["day"][2] == pd.Timestamp("1900-12-31T00:00:00Z")
        assert result["payload"][0] == '{"a": [1, 2]}'


def test_pk_integers_stringified_by_old_metabase_come_back_as_integers(
    old_metabase: StandinSetup,
) -> None:
    old_metabase.server.honour_middleware = False
    with old_metabase.client() as client:
        table = table_metadata(client, old_metabase.orders_id)
        frame = _concat(list(read_table(client, table, limit=3)))
    raw = old_metabase.server.dataset_bodies()
    assert raw  # the middleware flag was sent but ignored: ids arrived as "1", "2", ...
    assert frame["id"].tolist() == [1, 2, 3] and str(frame["id"].dtype) == "Int64"
    assert frame["big_id"].tolist()[0] == JS_MAX_SAFE + 1


def test_report_timezone_offsets_are_applied(metabase: StandinSetup) -> None:
    metabase.server.results_timezone = "Europe/Berlin"
    with metabase.client() as client:
        table = table_metadata(client, metabase.types_id)
        frame = _concat(list(read_table(client, table)))
        exported = _concat(list(read_table(client, table, method="export")))
    # Stored 2024-01-02 03:04:05.25 wall time in Berlin = 02:04:05.25 UTC, both paths.
    assert frame["moment"][0] == pd.Timestamp("2024-01-02T02:04:05.25Z")
    assert exported["moment"][0] == frame["moment"][0]
    assert frame["day"][0] == pd.Timestamp("2024-01-02T00:00:00Z")


def test_failed_table_query_is_an_error_naming_the_table(metabase: StandinSetup) -> None:
    with metabase.client() as client:
        table = resolve_table(client, table_id=metabase.orders_id)
        metabase.server.databases[metabase.sales_id].connection.execute(
            'ALTER TABLE "PUBLIC"."ORDERS" RENAME TO "GONE"'
        )
        with pytest.raises(SourceError, match=r"query on Sales ORDERS failed.*no such table"):
            list(read_table(client, table, database_label="Sales ORDERS"))


def test_native_result_of_exactly_2000_rows_is_not_a_false_alarm(metabase: StandinSetup) -> None:
    sql = "SELECT id FROM PUBLIC.ORDERS WHERE id <= 2000"
    with metabase.client() as client:
        frame = _concat(list(read_native(client, metabase.sales_id, sql)))
    assert len(frame) == 2000  # raised caps: no flag, so the result is known to be whole


def test_native_exactly_at_the_cap_on_a_capping_server_is_confirmed_by_a_count(
    capped_metabase: StandinSetup,
) -> None:
    sql = "SELECT id FROM PUBLIC.ORDERS WHERE id <= 2000"
    with capped_metabase.client() as client:
        frame = _concat(list(read_native(client, capped_metabase.sales_id, sql)))
        assert len(frame) == 2000  # flagged rows_truncated, but the count says 2000: whole
        assert len(capped_metabase.server.dataset_bodies()) == 2
        limited = _concat(list(read_native(client, capped_metabase.sales_id, sql, limit=2000)))
    assert len(limited) == 2000
    assert len(capped_metabase.server.dataset_bodies()) == 3  # limit reached: nothing to count


def test_export_cut_mid_stream_is_retried_and_the_table_still_comes_out_whole(
    metabase: StandinSetup,
) -> None:
    metabase.server.add_fault("/api/dataset/json", kind="cut")
    metabase.server.add_fault("/api/dataset/json", kind="reset")
    with metabase.client() as client:
        table = table_metadata(client, metabase.orders_id)
        frame = _concat(list(read_table(client, table, method="export", page_size=2500)))
        assert client.retries == 2
    _assert_whole_orders(frame)


def test_pool_saturation_503_with_a_failed_body_is_retried(metabase: StandinSetup) -> None:
    busy = '{"status": "failed", "error_type": "connection-pool-checkout-timeout"}'
    metabase.server.add_fault("/api/dataset", status=503, body=busy, times=2)
    with metabase.client() as client:
        table = table_metadata(client, metabase.orders_id)
        frame = _concat(list(read_table(client, table, limit=100)))
    assert frame["id"].tolist() == list(range(1, 101))
    assert metabase.server.count("POST", "/api/dataset") == 3


@pytest.mark.parametrize(
    ("page_size", "requests"),
    # 3000 + 2000, 4000 + 1000, 4999 + 1, 5000 + an empty page, 5000 of 7000; each + a count
    [(3000, 3), (4000, 3), (4999, 3), (5000, 3), (7000, 2)],
)
def test_a_short_last_page_is_the_end_once_a_count_confirms_it(
    metabase: StandinSetup, page_size: int, requests: int
) -> None:
    # e.g. pages of 3000: 3000 + 2000, then one count (5000): nothing is missing.
    stats = ReadStats("dataset", page_size)
    with metabase.client() as client:
        table = table_metadata(client, metabase.orders_id)
        frame = _concat(list(read_table(client, table, page_size=page_size, stats=stats)))
    _assert_whole_orders(frame)
    assert stats.requests == requests and stats.counts == 1 and stats.capped_pages == 0


def _count_bodies(server: MetabaseStandin) -> list[dict]:
    return [
        b
        for b in server.dataset_bodies()
        if b.get("query", {}).get("aggregation")
        or "COUNT(*)" in str(b.get("native", {}).get("query", ""))
    ]


def test_export_under_a_download_limit_that_is_not_round_yields_every_row(
    download_capped: CappedSetup,
) -> None:
    setup, limit = download_capped.setup, download_capped.limit
    messages: list[str] = []
    stats = ReadStats("export", 20_000)
    with setup.client() as client:
        table = table_metadata(client, download_capped.big_id)
        frames = list(read_table(client, table, method="export", stats=stats, log=messages.append))
    _assert_whole_orders(_concat(frames), BIG_ROWS)
    # Every export was cut at the limit but the last; one count found the rows missing.
    assert setup.server.count("POST", "/api/dataset/json") == math.ceil(BIG_ROWS / limit)
    assert len(_count_bodies(setup.server)) == 1
    assert stats.capped_pages == 1
    assert f"returned {limit} of 20000 rows" in messages[0] and f"{BIG_ROWS} rows" in messages[0]


def test_native_export_with_order_by_under_a_download_limit_yields_every_row(
    download_capped: CappedSetup,
) -> None:
    setup = download_capped.setup
    sql = "SELECT id, customer, big_id FROM PUBLIC.BIG_ORDERS"
    with setup.client() as client:
        frame = _concat(
            list(read_native(client, setup.sales_id, sql, order_by="id", method="export"))
        )
    _assert_whole_orders(frame, BIG_ROWS)


def test_native_export_without_order_by_under_a_download_limit_fails(
    download_capped: CappedSetup,
) -> None:
    setup, limit = download_capped.setup, download_capped.limit
    sql = "SELECT id FROM PUBLIC.BIG_ORDERS"
    with setup.client() as client, pytest.raises(SourceError) as caught:
        list(read_native(client, setup.sales_id, sql, method="export"))
    text = str(caught.value)
    assert f"returned {limit} rows" in text and f"counts {BIG_ROWS} rows" in text
    assert "set order_by" in text and sql in text


def test_rows_missing_after_full_pages_fail_the_read(metabase: StandinSetup) -> None:
    # The limit changes during the read (an admin lowers it): page 2 comes back short, a count
    # shows rows are missing, and 1000 + 300 rows read cannot be paged on in pages of 300.
    with metabase.client() as client:
        table = table_metadata(client, metabase.orders_id)
        pages = read_table(client, table, method="export", page_size=1000)
        assert len(next(pages)) == 1000
        metabase.server.download_row_limit = 300
        with pytest.raises(SourceError) as caught:
            list(pages)
    text = str(caught.value)
    assert "page 2 returned 300 of 1000 rows" in text and f"{ORDERS_ROWS} rows" in text
    assert "rows are missing" in text


def test_a_short_first_page_is_confirmed_by_one_count(metabase: StandinSetup) -> None:
    stats = ReadStats("dataset", 20_000)
    with metabase.client() as client:
        table = table_metadata(client, metabase.orders_id)
        frame = _concat(list(read_table(client, table, stats=stats)))
    _assert_whole_orders(frame)
    count = _count_bodies(metabase.server)
    assert len(count) == 1 and stats.requests == 2
    assert count[0]["query"]["aggregation"] == [["count"]]
    assert "page" not in count[0]["query"] and "order-by" not in count[0]["query"]
