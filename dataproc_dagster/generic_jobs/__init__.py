"""The generic jobs: compositions of an extractor and the ClickHouse loader, set up entirely by
run config (the launchpad, ``dagster job execute -c``), like the shipped pipelines in
``dataproc_dagster/pipelines/`` but without a fixed source or target.

- :mod:`~dataproc_dagster.generic_jobs.http_to_clickhouse`: ``http_to_clickhouse``;
- :mod:`~dataproc_dagster.generic_jobs.metabase`: ``metabase_to_clickhouse`` and
  ``metabase_catalog``.

They live here, not in their source packages, so that ``sources/`` never depends on
``loading/`` (the import contract in ``pyproject.toml`` keeps it so).
"""
