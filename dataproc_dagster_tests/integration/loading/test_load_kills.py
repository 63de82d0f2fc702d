"""SIGKILL of a real `dagster job execute` at chosen instants of the load step, in every mode.

After each kill the table is recovered twice, from two copies of the same crashed state: (a) by
``python -m dataproc_dagster.cli.resume`` (re-execution from failure) and (b) by a brand-new run of
the job. Both must end with every row exactly once and no staging or shadow table left.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.integrity.checks import WARNING, check_unfinished_loads
from dataproc_dagster.loading.ledger import KILL_ENV
from dataproc_dagster_tests.helpers import kill_job
from dataproc_dagster_tests.helpers.cli import REPO, cli_env, dagster_executable

MODULE = "dataproc_dagster_tests.helpers.kill_job"
KILLED = -9


def _run(arguments: list[str], state: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command against the data folder and instance in ``state``, in its own session.

    The own session matters: the kill point kills its whole process group, as ``kill -9`` of
    the job's process tree would.
    """
    return subprocess.run(
        arguments,
        cwd=REPO,
        env={**cli_env(state / "data", state / "home"), **env},
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )


def _execute(mode: str, state: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [dagster_executable(), "job", "execute", "-m", MODULE, "-j", f"kill_{mode}"]
    return _run(command, state, **env)


def _resume(mode: str, state: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dataproc_dagster.cli.resume", "--job", f"kill_{mode}"]
    return _run([*command, "--module", MODULE], state)


def _clickhouse(state: Path) -> ClickHouseResource:
    return ClickHouseResource(url=f"chdb://{state / 'data' / 'clickhouse'}", lock_timeout=30)


def _table(state: Path, mode: str) -> pd.DataFrame:
    rows = _clickhouse(state).query_rows(f"SELECT id, p, v FROM kill_{mode} ORDER BY id")
    return pd.DataFrame(rows, columns=["id", "p", "v"])


def _rows(frame: pd.DataFrame) -> list[tuple[int, int, int]]:
    return sorted((int(i), int(p), int(v)) for i, p, v in frame[["id", "p", "v"]].itertuples(False))


def _work_tables(state: Path) -> list[str]:
    rows = _clickhouse(state).query_rows(
        "SELECT name FROM system.tables WHERE database = 'default' AND "
        "(startsWith(name, '_stage_') OR startsWith(name, '_shadow_'))"
    )
    return [r[0] for r in rows]


def _assert_exactly_once(state: Path, mode: str, extra_new_loads: int = 0) -> None:
    """The table holds the earlier rows and the new rows once each (plain SELECT, no FINAL)."""
    want = kill_job.expected(mode)
    if extra_new_loads:
        want = pd.concat([want] + [kill_job.batch(mode, "new")] * extra_new_loads)
    got = _table(state, mode)
    assert (len(got), int(got["id"].sum()), int(got["v"].sum())) == (
        len(want),
        int(want["id"].sum()),
        int(want["v"].sum()),
    )
    assert sorted(got["id"]) == sorted(want["id"])
    assert _work_tables(state) == []


class Loaded:
    """Per mode, built on first use: a data folder and instance after a run loaded ``before``."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.states: dict[str, Path] = {}

    def __getitem__(self, mode: str) -> Path:
        if mode not in self.states:
            state = self.factory.mktemp(f"before_{mode}")
            result = _execute(mode, state, KILL_TEST_BATCH="before")
            assert result.returncode == 0, result.stderr[-3000:]
            self.states[mode] = state
        return self.states[mode]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The earlier state of each mode's table, shared by the module's tests (they copy it)."""
    return Loaded(tmp_path_factory)


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)  # the engine links tables relatively
    return target


def _crash(loaded: Loaded, tmp_path: Path, mode: str, point: str) -> Path:
    state = _copy(loaded[mode], tmp_path / "crashed")
    result = _execute(mode, state, **{KILL_ENV: point})
    assert result.returncode == KILLED, (point, result.returncode, result.stderr[-3000:])
    return state


CASES = [
    ("append", "start"),
    ("append", "staging:chunk:1"),
    ("append", "publishing:attach:120"),
    ("append", "publishing:after_swap"),
    ("append", "published"),
    ("upsert", "publishing:attach:120"),
    ("upsert", "publishing:after_swap"),
    ("replace", "staging:chunk:1"),
    ("replace", "publishing:after_swap"),
    ("replace_partitions", "publishing:attach:60"),
    ("replace_partitions", "publishing:after_swap"),
]


@pytest.mark.parametrize(("mode", "point"), CASES)
def test_kill_then_resume_or_new_run_loads_each_row_once(
    loaded: Loaded, tmp_path: Path, mode: str, point: str
) -> None:
    crashed = _crash(loaded, tmp_path, mode, point)
    # Readers see the old table or the complete new one, never a mix.
    readers_saw = _rows(_table(crashed, mode))
    assert readers_saw in (_rows(_table(loaded[mode], mode)), _rows(kill_job.expected(mode)))

    resumed = _copy(crashed, tmp_path / "resumed")
    result = _resume(mode, resumed)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SUCCESS" in result.stdout
    _assert_exactly_once(resumed, mode)

    fresh = _copy(crashed, tmp_path / "fresh")
    result = _execute(mode, fresh)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_exactly_once(fresh, mode)


def test_check_lists_what_a_killed_load_left(loaded: Loaded, tmp_path: Path) -> None:
    crashed = _crash(loaded, tmp_path, "append", "publishing:attach:120")
    result = check_unfinished_loads(_clickhouse(crashed))
    assert result.status == WARNING
    tables = result.metadata["work_tables"]
    assert sorted(t.split(" ")[0].split("_")[1] for t in tables) == ["shadow", "stage"]
    assert all(" rows, " in t for t in tables)
    assert any("270 rows" in t for t in tables)  # the staged new data
    (load,) = result.metadata["unfinished_loads"]
    assert "default.kill_append" in load and "publishing" in load

    result = _execute("append", crashed)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "was left unfinished: undone" in result.stdout + result.stderr
    assert check_unfinished_loads(_clickhouse(crashed)).status == "passed"


def test_repeated_kills_then_a_clean_run_append_once(loaded: Loaded, tmp_path: Path) -> None:
    """Killed runs that published (or not) and then one clean run: earlier rows + new rows once."""
    state = _copy(loaded["append"], tmp_path / "state")
    # Once a killed run has published, later runs stage the same data and stop there (identical
    # to what a run that did not finish published), so later kills can only come before that.
    for point in ("publishing:attach:120", "publishing:after_swap", "staging:chunk:1", "staged"):
        result = _execute("append", state, **{KILL_ENV: point})
        assert result.returncode == KILLED, (point, result.stderr[-3000:])
    result = _execute("append", state)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "which did not finish" in result.stdout + result.stderr
    _assert_exactly_once(state, "append")

    # The same data again in a later, separate run is a real second load.
    result = _execute("append", state)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_exactly_once(state, "append", extra_new_loads=1)
