"""The README and docs say what a user sees: real names, real commands, no outside references."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dataproc_dagster.cli.show_table import main as show_table

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
DOCS = {p.name: p.read_text() for p in sorted((REPO / "docs").glob("*.md"))}


def test_every_schedule_named_in_the_docs_exists() -> None:
    from dataproc_dagster.definitions import defs

    real = {s.name for s in defs.schedules or []}
    # The pages that name the code location's own schedules (extending.md builds examples).
    for name, text in {"README.md": README, "operations.md": DOCS["operations.md"]}.items():
        for mentioned in re.findall(r"`(\w+_(?:schedule|hourly|daily))`", text):
            assert mentioned in real, f"{name} names schedule {mentioned}; real: {sorted(real)}"


@pytest.mark.parametrize("name", ["README.md", *DOCS])
def test_docs_do_not_refer_to_the_original_framework_or_issues(name: str) -> None:
    text = README if name == "README.md" else DOCS[name]
    # ``/w[o]rk/``: a machine path, bracketed so that this file holds none itself.
    for pattern in (r"(?i)\boriginal\b", r"(?i)\bthe issue\b", r"shared/", r"/w[o]rk/"):
        assert not re.search(pattern, text), f"{name} matches {pattern}"


def test_errors_are_not_promised_without_a_stack_trace() -> None:
    assert "without a stack trace" not in DOCS["extending.md"]


def test_readme_explains_what_a_user_meets() -> None:
    # 344 birds in the data set, 342 in the tables: the README says why.
    assert "342" in README and "no measurement" in README
    assert "DAGSTER_PORT" in README
    assert "Reload definitions" in README
    assert "python -m dataproc_dagster.cli.show_table" in README
    assert ".dataproc/" in README and ".dagster_home/" in README and "Back up" in README
    assert "FINAL" in README


def test_show_table_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        show_table(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "usage: python -m dataproc_dagster.cli.show_table" in out and "TABLE" in out
    assert "does not exist" not in out


def test_docs_say_that_pipeline_modules_pass_the_lint_gate() -> None:
    for text in (README, DOCS["extending.md"]):
        assert "./run.sh test" in text and "ruff format" in text and "mypy" in text
    assert "**The lint gate.**" in DOCS["extending.md"]
