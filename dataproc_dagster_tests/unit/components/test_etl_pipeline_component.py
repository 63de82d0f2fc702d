"""EtlPipelineComponent: a YAML pipeline is the Python pipeline of the same arguments, every
documented or scaffolded YAML loads, secrets stay environment variables, mistakes are named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, Definitions

from dataproc_dagster import (
    HttpRetryPolicy,
    Incremental,
    bearer,
    create_clickhouse_loader,
    create_etl_pipeline,
    create_http_extractor,
    create_sql_step,
    create_transformer,
    page_number,
)
from dataproc_dagster.components import EtlPipelineComponent
from dataproc_dagster.components.etl_pipeline import definitions_of
from dataproc_dagster.components.scaffolder import scaffold_text
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.definitions import check_pipeline_names, without_shadowed_sources
from dataproc_dagster.pipeline.jobs import Pipeline
from dataproc_dagster.pipeline.registry import discover_pipelines
from dataproc_dagster_tests.helpers.components import (
    COMPONENT_TYPE,
    definitions_snapshot,
    documented_yaml_examples,
    load_yaml_folder,
    materialized,
    source_specs,
    yaml_line,
)
from dataproc_dagster_tests.helpers.pipelines import add_loaded_flag

ORDERS_YAML = """\
type: dataproc_dagster.components.EtlPipelineComponent

attributes:
  name: orders
  description: Shop orders
  owners: ["team:sales", "ana@example.com"]
  group: shop
  tags: {tier: gold}
  source:
    http:
      url: https://shop.example.com/api/v1/orders
      auth:
        kind: bearer
        secret: "{{ env.SHOP_TOKEN }}"
      paginator:
        style: page_number
        page_size: 50
        total_pages_path: meta.total_pages
      records_path: data.items
      params: {status: open}
      incremental:
        cursor_field: updated_at
        param: updated_since
        key: [id]
      retry:
        max_attempts: 8
        statuses: [429, 503]
  transformers:
    - dataproc_dagster_tests.helpers.pipelines.add_loaded_flag
  loader:
    table: shop.orders
    mode: upsert
    key_columns: [id]
    order_by: [id]
    schema_drift: evolve
  sql_steps:
    - table: shop.orders_daily
      select: SELECT toDate(updated_at) AS day, count() AS orders FROM shop.orders GROUP BY day
      order_by: [day]
  schedule: "0 * * * *"
  timezone: Europe/Berlin
  chunk_rows: 5000

requirements:
  env: [SHOP_TOKEN]
"""


ORDERS_EXTRACTOR = create_http_extractor(
    "https://shop.example.com/api/v1/orders",
    auth=bearer("SHOP_TOKEN"),
    paginator=page_number(page_size=50, total_pages_path="meta.total_pages"),
    records_path="data.items",
    params={"status": "open"},
    incremental=Incremental("updated_at", "updated_since", key=("id",)),
    retry=HttpRetryPolicy(max_attempts=8, statuses=frozenset({429, 503})),
)
ORDERS_LOADER = create_clickhouse_loader(
    "shop.orders", mode="upsert", key_columns=["id"], order_by=["id"], schema_drift="evolve"
)


def _orders_in_python() -> Pipeline:
    return create_etl_pipeline(
        name="orders",
        extractor=ORDERS_EXTRACTOR,
        transformers=[create_transformer(add_loaded_flag)],
        loader=ORDERS_LOADER,
        sql_steps=[
            create_sql_step(
                "SELECT toDate(updated_at) AS day, count() AS orders FROM shop.orders GROUP BY day",
                "shop.orders_daily",
                order_by=["day"],
            )
        ],
        schedule="0 * * * *",
        timezone="Europe/Berlin",
        description="Shop orders",
        tags={"tier": "gold"},
        chunk_rows=5000,
        owners=["team:sales", "ana@example.com"],
        group_name="shop",
    )


def test_yaml_and_python_forms_build_the_same_asset_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_TOKEN", "tok-123456-secret")
    defs, [yaml_pipeline] = load_yaml_folder(tmp_path, monkeypatch, {"orders": ORDERS_YAML})
    python_pipeline = _orders_in_python()

    assert definitions_snapshot(defs) == definitions_snapshot(definitions_of(python_pipeline))
    # The snapshot says what it compares, spelled out for this pipeline:
    snapshot = definitions_snapshot(defs)
    table = snapshot["assets"]["clickhouse/shop/orders"]
    assert table["deps"] == ["http/shop.example.com/api/v1/orders"]
    assert set(table["checks"]) == {
        "rows_loaded",
        "columns_match",
        "unique_keys",
        "freshness_check",
    }
    assert snapshot["schedules"] == {
        "orders_schedule": {"cron": "0 * * * *", "timezone": "Europe/Berlin", "job": "orders"}
    }
    assert yaml_pipeline.module.endswith("/orders/defs.yaml")
    # The blocks' options, which the asset graph does not show, are the Python ones too.
    component = EtlPipelineComponent.model_validate(yaml.safe_load(ORDERS_YAML)["attributes"])
    assert component.source is not None and component.loader is not None
    assert component.source.to_extractor(tmp_path).spec == ORDERS_EXTRACTOR.spec  # type: ignore[attr-defined]
    assert component.loader.to_loader().spec == ORDERS_LOADER.spec


def test_documented_penguins_yaml_is_the_python_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [block] = [b for _, b in documented_yaml_examples() if re.search(r"name: penguins\n", b)]
    defs, _ = load_yaml_folder(tmp_path, monkeypatch, {"penguins": block})
    [python] = [p for p in discover_pipelines() if p.name == "penguins"]

    assert definitions_snapshot(defs) == definitions_snapshot(definitions_of(python))


@pytest.mark.parametrize(
    ("page", "block"),
    documented_yaml_examples(),
    ids=[f"{page}-{n}" for n, (page, _) in enumerate(documented_yaml_examples())],
)
def test_every_documented_yaml_example_loads(
    page: str, block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = re.search(r"^  name: (\w+)$", block, flags=re.MULTILINE)
    assert name is not None, f"a YAML example of {page} names no pipeline"
    defs, [pipeline] = load_yaml_folder(tmp_path, monkeypatch, {name.group(1): block})

    assert pipeline.name == name.group(1)
    assert {job.name for job in defs.jobs or []} == {pipeline.name}


def test_the_docs_show_yaml_examples() -> None:
    pages = [page for page, _ in documented_yaml_examples()]
    assert pages.count("extending.md") >= 2 and "README.md" in pages
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    writing = readme[readme.index("## Writing a pipeline") :]
    assert writing.index("```yaml") < writing.index("```python")  # YAML first


@pytest.mark.parametrize("kind", ["http", "clickhouse", "metabase", "file"])
def test_the_scaffolded_defs_yaml_loads_for_every_source_kind(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = scaffold_text(COMPONENT_TYPE, "events", kind)
    assert text.count("\n  # ") > 10  # every option is shown, commented

    _, [pipeline] = load_yaml_folder(tmp_path, monkeypatch, {"events": text})

    assert pipeline.name == "events"
    assert pipeline.targets == ("default.events",)


def test_a_secret_stays_the_name_of_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_TOKEN", "tok-123456-secret")
    monkeypatch.setenv("SHOP_URL", "https://shop.example.com/api/v2")
    text = ORDERS_YAML.replace(
        "url: https://shop.example.com/api/v1/orders", 'url: "{{ env.SHOP_URL }}/orders"'
    )
    defs, [pipeline] = load_yaml_folder(tmp_path, monkeypatch, {"orders": text})

    # Other text fields are rendered when the code location loads...
    assert [s.key for s in source_specs(defs)] == [
        AssetKey(["http", "shop.example.com", "api", "v2", "orders"])
    ]
    # ...the secret is not: the extractor keeps the variable's name and reads it when it runs.
    component = EtlPipelineComponent.model_validate(
        {"source": {"http": {"url": "https://x.example.com", "auth": {
            "kind": "bearer", "secret": "{{ env.SHOP_TOKEN }}"}}}, "loader": {"table": "t"}}
    )  # fmt: skip
    assert component.source is not None and component.source.http is not None
    extractor = component.source.http.to_extractor()
    assert extractor.spec.auth == bearer("SHOP_TOKEN")  # type: ignore[attr-defined]
    assert "tok-123456-secret" not in repr(definitions_snapshot(defs))
    assert pipeline.name == "orders"


@pytest.mark.parametrize(
    ("old", "new", "field", "line", "message"),
    [
        (
            'secret: "{{ env.SHOP_TOKEN }}"',
            "secret: tok-123456-literal",
            "source.http.auth.secret",
            "secret:",
            "must name an environment variable",
        ),
        (
            "params: {status: open}",
            "params: {api_key: abc}",
            "source.http.params",
            "params:",
            "looks like a credential",
        ),
        (
            "url: https://shop.example.com/api/v1/orders",
            "url: https://shop.example.com/api/v1/orders?access_token=abc",
            "source.http.url",
            "url:",
            "looks like a credential",
        ),
        ("mode: upsert", "mode: upsrt", "loader.mode", "mode:", "'append', 'replace'"),
        ("key_columns: [id]", "key_colums: [id]", "loader.key_colums", "key_colums:", "Extra"),
        ("    table: shop.orders\n", "", "loader.table", "^  loader:", "Field required"),
        ('schedule: "0 * * * *"', 'schedule: "0 25 * * *"', "schedule", "schedule:", "cron"),
        (
            "style: page_number",
            "style: cursor",
            "source.http.paginator",
            "paginator:",
            "cursor pagination takes no option",
        ),
        (
            "dataproc_dagster_tests.helpers.pipelines.add_loaded_flag",
            "no_such_module.fn",
            "transformers",
            "transformers:",
            "cannot import module 'no_such_module'",
        ),
    ],
    ids=[
        "literal-secret",
        "secret-param",
        "secret-in-url",
        "mode",
        "typo",
        "no-table",
        "cron",
        "paginator",
        "fn",
    ],
)
def test_a_mistake_names_the_file_the_line_and_the_field(
    old: str,
    new: str,
    field: str,
    line: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert old in ORDERS_YAML
    text = ORDERS_YAML.replace(old, new)

    with pytest.raises(Exception) as raised:
        load_yaml_folder(tmp_path, monkeypatch, {"orders": text})

    error = str(raised.value.__cause__ or raised.value)
    assert f"attributes.{field} at " in error
    assert f"orders/defs.yaml:{yaml_line(text, line)}" in error
    assert message in error


def test_a_yaml_and_a_python_pipeline_may_not_share_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = ORDERS_YAML.replace("name: orders", "name: penguins")
    _, yaml_pipelines = load_yaml_folder(tmp_path, monkeypatch, {"orders": text})

    with pytest.raises(ConfigError, match="duplicate pipeline name 'penguins'") as raised:
        check_pipeline_names([*discover_pipelines(), *yaml_pipelines])
    assert "dataproc_dagster.pipelines.penguins" in str(raised.value)
    assert "orders/defs.yaml" in str(raised.value)


def test_the_code_location_has_the_shipped_yaml_pipeline() -> None:
    from dataproc_dagster.definitions import defs

    jobs = {job.name for job in defs.jobs or []}
    assert {"penguins", "penguin_islands", "http_to_clickhouse", "migrate"} <= jobs
    assert {"clickhouse/default/penguins_raw", "clickhouse/default/penguin_island_counts"} <= set(
        materialized(defs)
    )
    # Both samples read the same CSV: its external asset is listed once, upstream of both.
    assert [s.key for s in source_specs(defs)].count(AssetKey(["file", "penguins.csv"])) == 1
    graph = defs.get_repository_def().asset_graph
    children = graph.get(AssetKey(["file", "penguins.csv"])).child_keys
    assert {k.to_user_string() for k in children} == {
        "clickhouse/default/penguins",
        "clickhouse/default/penguins_raw",
    }


def test_a_file_path_is_relative_to_its_defs_yaml_or_inside_a_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = scaffold_text(COMPONENT_TYPE, "rows", "file")
    defs, _ = load_yaml_folder(tmp_path, monkeypatch, {"rows": text})
    [source] = source_specs(defs)

    assert source.key == AssetKey(["file", "rows.csv"])
    [folder] = tmp_path.glob("yaml_defs_*/rows")
    assert str(folder / "rows.csv") in (source.description or "")

    missing = text.replace("# package: palmerpenguins", "package: no_such_package")
    with pytest.raises(Exception) as raised:
        load_yaml_folder(tmp_path, monkeypatch, {"rows": missing})
    error = str(raised.value.__cause__ or raised.value)
    assert f"rows/defs.yaml:{yaml_line(missing, 'package: no_such')}" in error
    assert "no installed package 'no_such_package'" in error


def test_lineage_crosses_from_a_python_pipeline_into_a_yaml_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = scaffold_text(COMPONENT_TYPE, "by_island", "clickhouse").replace(
        "query: SELECT * FROM source_table",
        "query: SELECT island, count() AS birds FROM penguins GROUP BY island",
    )
    component_defs, _ = load_yaml_folder(tmp_path, monkeypatch, {"by_island": text})
    [python] = [p for p in discover_pipelines() if p.name == "penguins"]

    # The YAML pipeline's source is a table the Python one materializes: one asset, not an
    # external asset beside it (which Dagster would refuse as a duplicate key).
    merged = without_shadowed_sources(Definitions.merge(definitions_of(python), component_defs))
    assets = definitions_snapshot(merged)["assets"]

    assert assets["clickhouse/default/by_island"]["deps"] == ["clickhouse/default/penguins"]
    assert assets["clickhouse/default/penguins"]["materializable"] is True
    assert assets["clickhouse/default/penguins"]["deps"] == ["file/penguins.csv"]
