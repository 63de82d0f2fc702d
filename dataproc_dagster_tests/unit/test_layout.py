"""Layout rules the import contract cannot see: type-only imports count as dependencies too."""

from __future__ import annotations

import ast
from pathlib import Path

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
