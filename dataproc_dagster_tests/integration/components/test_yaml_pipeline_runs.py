"""A YAML pipeline runs like its Python form: an authenticated, paged HTTP source into an upsert
table and a SQL step, the secret read from the environment when the step runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster_tests.helpers.components import load_yaml_folder
from dataproc_dagster_tests.servers.http_api import ApiState, serve_api

TOKEN = "tok-7f3a9c-run-time"

ITEMS = """\
type: dataproc_dagster.components.EtlPipelineComponent
attributes:
  name: items_sync
  source:
    http:
      url: "{{ env.ITEMS_API }}/pages"
      auth:
        kind: bearer
        secret: "{{ env.ITEMS_TOKEN }}"
      paginator:
        style: page_number
        page_size: 40
        total_pages_path: meta.total_pages
      records_path: data.items
  transformers:
    - dataproc_dagster_tests.helpers.pipelines.add_loaded_flag
  loader:
    table: items
    mode: upsert
    key_columns: [id]
    order_by: [id]
  sql_steps:
    - table: items_by_owner
      select: SELECT owner_id, count() AS items, sum(loaded) AS flagged FROM items GROUP BY owner_id
      order_by: [owner_id]
requirements:
  env: [ITEMS_API, ITEMS_TOKEN]
"""


def test_the_secret_is_read_when_the_step_runs(
    clickhouse: ClickHouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_api(ApiState(auth=("bearer", TOKEN))) as api:
        monkeypatch.setenv("ITEMS_API", api.url)
        monkeypatch.delenv("ITEMS_TOKEN", raising=False)
        # The definitions load without the secret: only its variable's name is kept...
        _, [pipeline] = load_yaml_folder(tmp_path, monkeypatch, {"items_sync": ITEMS})
        # ...and the step reads it when it runs.
        monkeypatch.setenv("ITEMS_TOKEN", TOKEN)
        result = pipeline.execute_in_process(resources={"clickhouse": clickhouse})

        assert result.success
        assert len(api.state.requests_to("/pages")) == 7  # 250 records, 40 a page
    assert clickhouse.query_rows("SELECT count(), sum(loaded) FROM items FINAL") == [(250, 250)]
    assert clickhouse.query_rows("SELECT sum(items) FROM items_by_owner") == [(250,)]
