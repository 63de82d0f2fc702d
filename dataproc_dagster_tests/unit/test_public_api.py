"""``dataproc_dagster`` exports what a pipeline author writes, and the docs import only from it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import dagster
import pytest

import dataproc_dagster

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)


def _package_imports(source: str) -> list[str]:
    """Every module of this package that ``source`` imports from."""
    modules = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
    return [m for m in modules if m.split(".")[0] == "dataproc_dagster"]


@pytest.mark.parametrize("name", dataproc_dagster.__all__)
def test_every_public_name_imports_from_the_package(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from dataproc_dagster import {name}", namespace)
    assert namespace[name] is getattr(dataproc_dagster, name)
    assert name in dir(dataproc_dagster)


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from dataproc_dagster import *", namespace)
    assert set(dataproc_dagster.__all__) <= set(namespace)


def test_the_authoring_vocabulary_is_public() -> None:
    from dataproc_dagster.sources.http import auth, pagination

    wanted = {
        *("page_number", "offset", "cursor", "next_url", "link_header", "single"),
        *("bearer", "api_key", "basic", "Incremental", "HttpRetryPolicy"),
        *("ConfigError", "SourceError", "SchemaError", "LoadError", "DataprocError"),
        *("ClickHouseResource", "HttpResource", "MetabaseResource", "ClickHouseMigrationManager"),
        *("get_settings", "measure_step", "create_etl_pipeline", "create_http_extractor"),
        *("WriteMode", "DriftPolicy"),
    }
    assert wanted <= set(dataproc_dagster.__all__)
    assert dataproc_dagster.link_header is pagination.link_header
    assert dataproc_dagster.bearer is auth.bearer
    assert (
        dataproc_dagster.create_clickhouse_loader(
            "t", mode=dataproc_dagster.WriteMode.UPSERT, key_columns=["id"]
        ).spec.mode
        == "upsert"
    )


def test_http_retry_policy_does_not_clash_with_dagsters() -> None:
    from dataproc_dagster.sources.http.retry import RetryPolicy

    assert RetryPolicy is dataproc_dagster.HttpRetryPolicy  # the old name keeps working
    assert dataproc_dagster.HttpRetryPolicy is not dagster.RetryPolicy
    assert "RetryPolicy" not in dataproc_dagster.__all__


def test_importing_the_package_stays_cheap() -> None:
    # The code location's Definitions load on first access only, and the embedded ClickHouse
    # engine (about 290 MB) is never loaded by an import.
    probe = (
        "import sys, dataproc_dagster; "
        "print(sorted(m for m in ('chdb', 'dataproc_dagster.definitions') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_docs_examples_import_only_from_the_package(page: Path) -> None:
    for number, block in enumerate(_python_blocks(page), start=1):
        for module in _package_imports(block):
            assert module == "dataproc_dagster", (
                f"{page.name} python block {number} imports from {module}: "
                "import the public name from dataproc_dagster instead"
            )


def test_the_docs_check_sees_the_examples() -> None:
    # The check above is only worth something if it finds the pages' imports.
    blocks = [block for page in PAGES for block in _python_blocks(page)]
    imports = [module for block in blocks for module in _package_imports(block)]
    assert imports.count("dataproc_dagster") >= 8
    assert _package_imports("from dataproc_dagster.sources.http.auth import bearer") == [
        "dataproc_dagster.sources.http.auth"
    ]
