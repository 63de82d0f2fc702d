"""The README's commands and pipeline example stay true."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["./run.sh demo", "./run.sh test"]
    assert "./run.sh test" in (REPO / ".ci" / "run").read_text()


def test_readme_pipeline_example_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    block = re.search(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert block is not None
    module = types.ModuleType("readme_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(block.group(1), "README.md", "exec"), module.__dict__)
    pipeline = module.__dict__["pipeline"]
    nodes = [n.name for n in pipeline.assets[0].node_def.nodes_in_topological_order]
    assert nodes[0] == "github_issues__extract" and nodes[-1] == "github_issues__load"
    assert pipeline.schedule.execution_timezone == "Europe/Berlin"
