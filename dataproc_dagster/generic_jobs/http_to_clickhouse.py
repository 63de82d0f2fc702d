"""Generic job ``http_to_clickhouse``: any JSON API into a ClickHouse table, from run config only.

Launch it from the Dagster launchpad or with ``dagster job execute -m dataproc_dagster -j
http_to_clickhouse -c config.yaml``; docs/http-extractor.md has a worked run config.
"""

from __future__ import annotations

from dataproc_dagster.loading.loader import create_clickhouse_loader
from dataproc_dagster.pipeline.factory import create_etl_pipeline
from dataproc_dagster.sources.http.extractor import create_configurable_http_extractor

PIPELINE = create_etl_pipeline(
    "http_to_clickhouse",
    extractor=create_configurable_http_extractor(),
    loader=create_clickhouse_loader(),
    description="Pull a JSON API (auth, paging, retries, incremental cursor) into a ClickHouse "
    "table. Configure the extract step (url, auth, paginator, records_path, incremental) and "
    "the load step (table, mode) in the launchpad; see docs/http-extractor.md.",
    tags={"dataproc/kind": "generic"},
)

JOBS = [PIPELINE.job]
