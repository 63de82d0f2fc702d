"""Runs every Python block of docs/extending.md, in order, against a fresh embedded ClickHouse."""

from __future__ import annotations

import re
import sys
import types
import warnings
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_page_has_examples_for_each_extension_point() -> None:
    text = "\n".join(_blocks())
    for name in (
        "create_extractor",
        "create_transformer",
        "create_loader",
        "create_etl_pipeline",
        "create_sql_step",
        "measure_step",
        "class JsonLinesExtractor",
    ):
        assert name in text


def test_every_example_runs(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("extending_docs")  # dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for number, block in enumerate(_blocks(), start=1):
            try:
                exec(compile(block, f"{DOC.name} block {number}", "exec"), namespace)
            except Exception as exc:  # name the failing block in the report
                pytest.fail(f"block {number} of {DOC.name} failed: {type(exc).__name__}: {exc}")
    clickhouse = namespace["clickhouse"]
    assert clickhouse.query_rows("SELECT count() FROM exchange_rates") == [(3,)]  # type: ignore[attr-defined]
    pipeline = namespace["pipeline"]
    assert pipeline.schedule.execution_timezone == "Europe/Berlin"  # type: ignore[attr-defined]
