"""SIGKILL of a real `dagster job execute` at chosen instants of the load step, in every mode.

After each kill the table is recovered twice, from two copies of the same crashed state: (a) by
``python -m dataproc_dagster.cli.resume`` (re-execution from failure: the same load, so each row
ends up exactly once) and (b) by a brand-new run of the job, which first finishes or undoes the
killed load and then loads its own data: a new run of an ``append`` is new data. Both end with no
staging table left.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.integrity.checks import check_unfinished_loads
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


def _resume(mode: str, state: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dataproc_dagster.cli.resume", "--job", f"kill_{mode}"]
    return _run([*command, "--module", MODULE], state, **env)


def _clickhouse(state: Path) -> ClickHouseResource:
    return ClickHouseResource(url=f"chdb://{state / 'data' / 'clickhouse'}", lock_timeout=30)


def _table(state: Path, mode: str) -> pd.DataFrame:
    final = " FINAL" if mode == "upsert" else ""  # versions of a key collapse in merges
    rows = _clickhouse(state).query_rows(f"SELECT id, p, v FROM kill_{mode}{final} ORDER BY id")
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
    """The table holds the earlier rows and the new rows once each (``FINAL`` for upsert)."""
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
    ("append", "publishing:partition:45"),
    ("append", "published:before_cleanup"),
    ("upsert", "publishing:partition:45"),
    ("replace", "staging:chunk:1"),
    ("replace", "publishing:before_swap"),
    ("replace", "publishing:after_swap"),
    ("replace_partitions", "publishing:partition:30"),
]
PUBLISHING_POINTS = ("publishing:", "published")


def _complete_partitions(state: Path, mode: str, loaded: Loaded) -> None:
    """Readers see the earlier rows plus whole partitions of the new ones, never part of one."""
    got = _table(state, mode)
    before, new = kill_job.batch(mode, "before"), kill_job.batch(mode, "new")
    if mode == "replace":
        assert _rows(got) in (_rows(_table(loaded[mode], mode)), _rows(kill_job.expected(mode)))
        return
    arrived = set(got[got["v"] == 2]["p"])
    want = new[new["p"].isin(arrived)]
    kept = before if mode != "replace_partitions" else before[~before["p"].isin(arrived)]
    assert _rows(got) == _rows(pd.concat([kept, want]))


@pytest.mark.parametrize(("mode", "point"), CASES)
def test_kill_then_resume_or_new_run_loads_each_row_once(
    loaded: Loaded, tmp_path: Path, mode: str, point: str
) -> None:
    crashed = _crash(loaded, tmp_path, mode, point)
    _complete_partitions(crashed, mode, loaded)

    resumed = _copy(crashed, tmp_path / "resumed")
    result = _resume(mode, resumed)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SUCCESS" in result.stdout
    _assert_exactly_once(resumed, mode)

    # A new run finishes what the killed one began publishing, then appends its own data.
    fresh = _copy(crashed, tmp_path / "fresh")
    result = _execute(mode, fresh)
    assert result.returncode == 0, result.stderr[-3000:]
    began_publishing = point.startswith(PUBLISHING_POINTS) and point != "publishing:before_swap"
    extra = 1 if mode == "append" and began_publishing else 0
    _assert_exactly_once(fresh, mode, extra_new_loads=extra)


def test_check_finishes_what_a_killed_load_left(loaded: Loaded, tmp_path: Path) -> None:
    crashed = _crash(loaded, tmp_path, "append", "publishing:partition:45")
    assert _work_tables(crashed)  # the stage, with the partitions not yet moved
    result = check_unfinished_loads(_clickhouse(crashed))
    assert result.status == "passed", result.message
    (settled,) = result.metadata["settled"]
    assert "default.kill_append" in settled and "rolled forward" in settled
    _assert_exactly_once(crashed, "append")

    # The re-execution of the killed run then has nothing left to do.
    result = _resume("append", crashed)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already loaded" in result.stdout + result.stderr
    _assert_exactly_once(crashed, "append")


def test_repeated_kills_of_re_executions_then_a_clean_one_append_once(
    loaded: Loaded, tmp_path: Path
) -> None:
    """One run killed, its re-executions killed at later instants, then a clean re-execution."""
    state = _copy(loaded["append"], tmp_path / "state")
    result = _execute("append", state, **{KILL_ENV: "staging:chunk:1"})
    assert result.returncode == KILLED, result.stderr[-3000:]
    for point in ("staged", "publishing:partition:45", "published:before_cleanup"):
        result = _resume("append", state, **{KILL_ENV: point})
        assert result.returncode == KILLED, (point, result.stderr[-3000:])
    result = _resume("append", state)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_exactly_once(state, "append")

    # The same data again in a later, separate run is a real second load.
    result = _execute("append", state)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_exactly_once(state, "append", extra_new_loads=1)


# --- On a ClickHouse server: another host, an outage, concurrent loads -------------------------


def _server_table(server: ClickHouseResource) -> pd.DataFrame:
    rows = server.query_rows("SELECT id, p, v FROM default.kill_append ORDER BY id")
    return pd.DataFrame(rows, columns=["id", "p", "v"])


def _assert_server_rows(server: ClickHouseResource, new_loads: int) -> None:
    before, new = kill_job.batch("append", "before"), kill_job.batch("append", "new")
    want = pd.concat([before] + [new] * new_loads)
    got = _server_table(server)
    assert _rows(got) == _rows(want)
    stages = server.query_rows(
        "SELECT name FROM system.tables WHERE database = 'default' AND name LIKE '\\_stage\\_%'"
    )
    assert stages == []


ON_ANOTHER_HOST = ["unshare", "-u", "sh", "-c", 'hostname other-pod-7f9c && exec "$@"', "sh"]


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("point", ["publishing:partition:45", "published:before_cleanup"])
def test_a_load_killed_while_publishing_is_finished_by_a_re_execution_on_another_host(
    server_clickhouse: ClickHouseResource, tmp_path: Path, point: str
) -> None:
    """The owner's host name differs (a Kubernetes pod): no liveness guess is needed."""
    result = _execute("append", tmp_path, KILL_TEST_BATCH="before")
    assert result.returncode == 0, result.stderr[-3000:]
    result = _execute("append", tmp_path, **{KILL_ENV: point})
    assert result.returncode == KILLED, result.stderr[-3000:]

    command = [sys.executable, "-m", "dataproc_dagster.cli.resume", "--job", "kill_append"]
    result = _run([*ON_ANOTHER_HOST, *command, "--module", MODULE, "--force"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SUCCESS" in result.stdout
    _assert_server_rows(server_clickhouse, new_loads=1)


@pytest.mark.server
@pytest.mark.slow
def test_two_concurrent_loads_one_killed_while_publishing_each_row_once(
    server_clickhouse: ClickHouseResource, tmp_path: Path
) -> None:
    result = _execute("append", tmp_path / "a", KILL_TEST_BATCH="before")
    assert result.returncode == 0, result.stderr[-3000:]
    env = {**cli_env(tmp_path / "a" / "data", tmp_path / "a" / "home")}
    command = [dagster_executable(), "job", "execute", "-m", MODULE, "-j", "kill_append"]
    killed = subprocess.Popen(
        command,
        cwd=REPO,
        env={**env, KILL_ENV: "publishing:partition:45"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    clean = _execute("append", tmp_path / "b")
    assert killed.wait(timeout=300) == KILLED
    assert clean.returncode == 0, clean.stderr[-3000:]
    result = _resume("append", tmp_path / "a")
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_server_rows(server_clickhouse, new_loads=2)
