"""Every shell block of the README and docs runs as written, or says why a test cannot run it.

A ```` ```bash ```` block is preceded by ``<!-- docs-test: run -->`` (run here, line by line as
one ``bash -e`` script, in a fresh project folder: ``.venv`` of this checkout, an instance under
``.dagster_home`` from ``deploy/dagster.yaml``) or ``<!-- docs-test: not run: REASON -->``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- docs-test: (run|not run: (?P<reason>.+?)) -->$")


def _blocks() -> list[tuple[str, int, str | None, str]]:
    """(page, line, marker, commands) of every bash block."""
    found = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        for index, line in enumerate(lines):
            if line.strip() != "```bash":
                continue
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
            marker = lines[index - 1].strip() if index else ""
            found.append((page.name, index + 1, marker, "\n".join(lines[index + 1 : end])))
    return found


BLOCKS = _blocks()
RUNNABLE = [b for b in BLOCKS if b[2] == "<!-- docs-test: run -->"]


@pytest.mark.parametrize(("page", "line", "marker", "commands"), BLOCKS)
def test_every_command_block_is_run_or_says_why(
    page: str, line: int, marker: str | None, commands: str
) -> None:
    match = MARKER.match(marker or "")
    assert match, f"{page}:{line}: mark the block <!-- docs-test: run --> or not run: REASON"
    assert match.group(1) == "run" or len(match.group("reason").strip()) > 10


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("page", "line", "marker", "commands"), RUNNABLE)
def test_runnable_command_blocks_work_as_written(
    page: str, line: int, marker: str, commands: str, tmp_path: Path
) -> None:
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / ".dagster_home").mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", tmp_path / ".dagster_home" / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CLICKHOUSE_"))}
    env["DATAPROC_DATA_DIR"] = str(tmp_path / ".dataproc")
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", commands],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{page}:{line}\n{output[-3000:]}"
    assert "Traceback" not in output and "Error:" not in output, output[-3000:]
