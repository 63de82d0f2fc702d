"""The ClickHouse resource's own calls, on the embedded engine."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from dataproc_dagster.clickhouse.resource import ClickHouseResource


def test_chunked_insert_query_and_streamed_batches(clickhouse: ClickHouseResource) -> None:
    clickhouse.command("CREATE TABLE nums (n Int64, label String) ENGINE = MergeTree ORDER BY n")
    chunks = [
        pd.DataFrame({"n": range(0, 150_000), "label": "df"}),
        pa.table(
            {"n": pa.array(range(150_000, 300_000), pa.int64()), "label": ["arrow"] * 150_000}
        ),
    ]
    assert clickhouse.connection.insert_chunks("nums", chunks) == 300_000

    counts = clickhouse.query_df(
        "SELECT label, count() AS c FROM nums GROUP BY label ORDER BY label"
    )
    assert counts.to_dict("list") == {"label": ["arrow", "df"], "c": [150_000, 150_000]}

    sizes = []
    with clickhouse.connection.arrow_batches(
        "SELECT n FROM nums WHERE n >= {low:Int64} ORDER BY n", {"low": 50_000}, batch_rows=60_000
    ) as batches:
        total = 0
        for batch in batches:
            sizes.append(batch.num_rows)
            total += pa.compute.sum(batch.column("n")).as_py()
    assert sum(sizes) == 250_000 and len(sizes) >= 3  # streamed in blocks, not one table
    assert total == sum(range(50_000, 300_000))


def test_describe_never_shows_the_password() -> None:
    server = ClickHouseResource(url="https://ch.example:8443", password="pw-123456789")
    assert server.describe() == "ClickHouse server https://ch.example:8443 (database default)"
    assert not server.is_embedded
