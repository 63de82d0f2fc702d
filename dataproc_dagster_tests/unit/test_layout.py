"""Layout rules the import contract cannot see: type-only imports count as dependencies too."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dataproc_dagster"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, ``if TYPE_CHECKING:`` blocks included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_page_walker_does_not_import_the_paginators() -> None:
    """pagination.py builds on walker.py; walker.py knows paginators as a Protocol only."""
    walker = _imports(PACKAGE / "sources" / "http" / "walker.py")
    assert "dataproc_dagster.sources.http.pagination" not in walker
    assert "dataproc_dagster.sources.http.walker" in _imports(
        PACKAGE / "sources" / "http" / "pagination.py"
    )


def test_every_private_dagster_import_says_why() -> None:
    """A ``dagster._`` import only where Dagster has no public equivalent, with the reason in
    the comment right above it."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip().startswith(("from dagster._", "import dagster._")):
                above = lines[number - 1].strip()
                assert above.startswith("#") and len(above) > 20, f"{path}:{number + 1}"
                found[f"{path.relative_to(PACKAGE)}"] = line.strip()
    assert sorted(found) == [
        "cli/__main__.py",
        "pipeline/assets.py",
        "pipeline/jobs.py",
        "pipeline/schedules.py",
    ], found


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        (
            "dataproc_dagster.sources.http.job",
            "dataproc_dagster.generic_jobs.http_to_clickhouse",
            "PIPELINE",
        ),
        (
            "dataproc_dagster.sources.metabase.job",
            "dataproc_dagster.generic_jobs.metabase",
            "METABASE_TO_CLICKHOUSE",
        ),
        (
            "dataproc_dagster.sources.metabase.job",
            "dataproc_dagster.generic_jobs.metabase",
            "metabase_catalog",
        ),
    ],
)
def test_generic_jobs_moved_with_a_deprecation_path(old: str, new: str, name: str) -> None:
    """The generic jobs compose a source and the loader: they live in generic_jobs/; the old
    import paths keep working, with a DeprecationWarning naming the new one."""
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"moved to {new}.{name}"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)
