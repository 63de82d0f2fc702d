"""``dg scaffold defs dataproc_dagster.components.EtlPipelineComponent NAME [--source KIND]``.

Writes a commented ``defs.yaml`` for the source kind (``http`` by default, ``clickhouse``,
``metabase`` or ``file``) that loads as it is and runs once its source (a URL, a query, a
table, a path) and its target table are filled in. Every option the scaffold leaves out is
shown commented, with its choices.
"""

from __future__ import annotations

from typing import Literal

from dagster import Scaffolder, ScaffoldRequest
from dagster.components.component_scaffolding import scaffold_component
from pydantic import BaseModel, Field

SourceKind = Literal["http", "clickhouse", "metabase", "file"]


class EtlPipelineScaffoldParams(BaseModel):
    """Options of ``dg scaffold defs ... EtlPipelineComponent NAME``."""

    source: SourceKind = Field(
        default="http", description="The source kind: http, clickhouse, metabase or file"
    )


_HEADER = """\
# Pipeline `{name}`: built by create_etl_pipeline, like a Python pipeline module
# (docs/extending.md, "Pipelines in YAML"). Fill in the source and the table, then:
#   dg check yaml {folder}
#   dg check defs
#   dg launch --job {name}
type: {type_name}

attributes:
  # Pipeline, job and asset group name (default: this folder's name).
  name: {name}
  description: {description}

  source:
"""

_SOURCES: dict[str, str] = {
    "http": """\
    http:
      # The endpoint (the first page): fill it in.
      url: https://api.example.com/v1/{name}
      # Dotted path of the records list (default: a top-level list, or the only list).
      # records_path: data.items
      # The secret is always an environment variable, listed under requirements.env below.
      # auth:
      #   kind: bearer                    # none, bearer, basic (+ username), api_key (+ name)
      #   secret: "{{{{ env.API_TOKEN }}}}"
      # paginator:
      #   style: page_number              # single, page_number, offset, cursor, next_url,
      #   page_size: 100                  # link_header
      #   total_pages_path: meta.total_pages
      # window_params:                    # partitioned: the run's window as parameters
      #   since: "{{start:%Y-%m-%d}}"
      # incremental:                      # only what is newer than the table holds
      #   cursor_field: updated_at
      #   param: updated_since
      #   key: [id]
      # retry:
      #   max_attempts: 5
""",
    "clickhouse": """\
    clickhouse:
      # The query: fill it in (bind values with {{name:Type}} placeholders and parameters).
      query: SELECT * FROM source_table
      # parameters: {{since: "2024-01-01"}}
      # window_parameters:                # partitioned: WHERE ts >= {{start:DateTime}}
      #   start: "{{start:%Y-%m-%d %H:%M:%S}}"
""",
    "metabase": """\
    metabase:
      # The Metabase database and table: fill them in (or database_id / table_id, or
      # native_query with order_by).
      database_name: Sample Database
      table_name: ORDERS
      # schema: PUBLIC
      # order_by: [ID]
      # window_parameters:                # partitioned native_query: WHERE day >= {{{{start}}}}
      #   start: "{{start:%Y-%m-%d}}"
""",
    "file": """\
    file:
      # The CSV or Parquet file: relative to this folder, absolute, or inside `package`.
      path: {name}.csv
      # package: palmerpenguins
      # format: csv                       # csv or parquet (default: the suffix)
      # partitioned: a path pattern such as exports/{name}_{{start:%Y-%m-%d}}.csv
""",
}

_FOOTER = """\

  # Applied to every chunk, in order: import paths of fn(df) -> df.
  # transformers:
  #   - my_package.transforms.clean

  loader:
    # The ClickHouse table: fill it in (table or database.table).
    table: {name}
    mode: append                          # append, replace, replace_partitions or upsert
    # key_columns: [id]                   # upsert: the key
    # order_by: [id]
    # partition_by: toYYYYMM(created_at)
    # schema_drift: freeze                # freeze, evolve or discard new columns

  # Tables rebuilt from a SELECT inside ClickHouse after the load.
  # sql_steps:
  #   - table: {name}_summary
  #     select: SELECT count() AS rows FROM {name}

  # schedule: "0 6 * * *"
  # timezone: UTC
  # owners: ["team:data"]

  # One run per day (hour, week, month, key), the source reading the run's window
  # (docs/partitions.md): http window_params, clickhouse / metabase window_parameters.
  # partitions:
  #   daily: {{start: "2024-01-01"}}        # or hourly, weekly, monthly; static: [a, b]
  # time_column: updated_at               # rows outside the run's window fail the run
  # backfill_policy: single_run           # a backfilled range in one run (multi_run)

# Environment variables the attributes use (`dg check yaml` checks the list).
# requirements:
#   env: [API_TOKEN]
"""

_DESCRIPTIONS = {
    "http": "{name} from an HTTP API into ClickHouse",
    "clickhouse": "{name} from a ClickHouse query",
    "metabase": "{name} from Metabase into ClickHouse",
    "file": "{name} from a file into ClickHouse",
}


def scaffold_text(type_name: str, name: str, source: str = "http", folder: str = "") -> str:
    """The commented ``defs.yaml`` of pipeline ``name`` reading a ``source`` source, written
    into ``folder`` (relative to the project)."""
    values = {"type_name": type_name, "name": name, "folder": folder or name}
    description = _DESCRIPTIONS[source].format(**values)
    return (
        _HEADER.format(description=description, **values)
        + _SOURCES[source].format(**values)
        + _FOOTER.format(**values)
    )


class EtlPipelineScaffolder(Scaffolder[EtlPipelineScaffoldParams]):
    """Writes ``<defs folder>/NAME/defs.yaml`` for an ``EtlPipelineComponent``."""

    @classmethod
    def get_scaffold_params(cls) -> type[EtlPipelineScaffoldParams]:
        """``--source http|clickhouse|metabase|file``."""
        return EtlPipelineScaffoldParams

    def scaffold(self, request: ScaffoldRequest[EtlPipelineScaffoldParams]) -> None:
        """Write the commented ``defs.yaml`` (``--format python``: Dagster's ``component.py``
        that builds the component in Python)."""
        if request.scaffold_format != "yaml":
            scaffold_component(request)
            return
        folder = request.target_path
        folder.mkdir(parents=True, exist_ok=True)
        params = request.params or EtlPipelineScaffoldParams()
        root = request.project_root
        where = folder.relative_to(root) if root and folder.is_relative_to(root) else folder
        text = scaffold_text(request.type_name, folder.name, params.source, where.as_posix())
        (folder / "defs.yaml").write_text(text, encoding="utf-8")
