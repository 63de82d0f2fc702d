"""``./run.sh deploy``: the deployment gate, on the machine it is started on, in Dagster form.

A deployment has eight steps (clean, sync, provision, migrate, test, cron,
integrity, verify). Here they are, in order; the gate stops at the first step that fails,
prints its message and exits 1, and can be re-run safely (every step is idempotent):

1. ``install``: the pinned dependencies (``run.sh`` installs them into ``.venv``); ``pip check``.
2. ``instance``: create or migrate the Dagster instance storage (PostgreSQL when
   ``DAGSTER_POSTGRES_URL`` is set) and write the ``clickhouse`` pool limit into it.
3. ``migrate``: apply pending ClickHouse migrations.
4. ``test``: the smoke tests (``--full-tests``: the whole suite).
5. ``schedules``: turn on the schedules listed in ``deploy/schedules.txt``.
6. ``integrity``: the integrity checks.
7. ``verify``: the definitions load; a webserver and a daemon on this instance answer (code
   location loaded, daemons healthy); one smoke run (``penguins``) goes through the run queue
   and succeeds. Both are stopped afterwards: in production systemd runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataproc_dagster.core.redaction import mask_secrets

ROOT = Path(__file__).resolve().parents[2]
SCHEDULES_FILE = ROOT / "deploy" / "schedules.txt"
SMOKE_TESTS = (
    "dataproc_dagster_tests/unit/test_dagster_yaml.py",
    "dataproc_dagster_tests/unit/test_public_api.py",
    "dataproc_dagster_tests/integration/test_definitions.py",
)
SMOKE_JOB = "penguins"
LOCATION = "dataproc_dagster"
LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


class StepFailed(RuntimeError):
    """A step of the gate failed; the message says what and how to fix it."""


@dataclass
class Gate:
    """The gate's options."""

    full_tests: bool = False
    skip_tests: bool = False
    timeout: float = 600.0

    def python(self) -> str:
        return sys.executable

    def tool(self, name: str) -> str:
        return str(Path(sys.executable).parent / name)


def run(argv: Sequence[str], what: str, timeout: float = 900.0) -> str:
    """Run a command; its output, or :class:`StepFailed` with the end of it."""
    try:
        done = subprocess.run(
            list(argv), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{what} did not finish within {timeout:.0f} s") from None
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-25:])
        raise StepFailed(f"{what} failed (exit {done.returncode}):\n{mask_secrets(tail)}")
    return output


def step_install(gate: Gate) -> str:
    run([gate.python(), "-m", "pip", "check"], "pip check")
    return "pinned dependencies installed (pip check: no conflicts)"


def step_instance(gate: Gate) -> str:
    run([gate.python(), "-m", "dataproc_dagster.cli.instance_setup"], "instance storage")
    pools = run([gate.python(), "-m", "dataproc_dagster.cli.pools"], "pool limit").strip()
    storage = "PostgreSQL" if os.environ.get("DAGSTER_POSTGRES_URL") else "SQLite"
    return f"instance storage ready ({storage}); {pools}"


def step_migrate(gate: Gate) -> str:
    out = run([gate.python(), "-m", "dataproc_dagster.cli.migrations", "up"], "migrations")
    return out.strip().splitlines()[-1] if out.strip() else "migrations applied"


def step_test(gate: Gate) -> str:
    if gate.skip_tests:
        return "skipped (--skip-tests)"
    targets = ["dataproc_dagster_tests"] if gate.full_tests else list(SMOKE_TESTS)
    out = run([gate.python(), "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets], "tests")
    lines = [line for line in out.strip().splitlines() if " passed" in line]
    return lines[-1] if lines else "tests passed"


def listed_schedules(path: Path = SCHEDULES_FILE) -> list[str]:
    """Schedule names in ``deploy/schedules.txt`` (one a line, ``#`` comments)."""
    if not path.is_file():
        return []
    names = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [name for name in names if name]


def step_schedules(gate: Gate) -> str:
    names = listed_schedules()
    for name in names:
        run(
            [gate.tool("dagster"), "schedule", "start", name, "-m", LOCATION],
            f"turning on schedule {name}",
        )
    return f"schedules on: {', '.join(names) or 'none listed in deploy/schedules.txt'}"


def step_integrity(gate: Gate) -> str:
    out = run([gate.python(), "-m", "dataproc_dagster.cli.integrity"], "integrity checks")
    return f"integrity checks passed ({len(out.strip().splitlines())} line(s) of report)"


def step_verify(gate: Gate) -> str:
    run([gate.tool("dagster"), "definitions", "validate", "-m", LOCATION], "definitions")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="dataproc-deploy-") as logs:
        webserver = [gate.tool("dagster-webserver"), "-m", LOCATION, "-h", "127.0.0.1"]
        procs = [_spawn([*webserver, "-p", str(port)], Path(logs) / "webserver.log")]
        try:
            _wait(lambda: _location_loaded(url), gate.timeout, "the webserver loads the code")
            daemon = [gate.tool("dagster-daemon"), "run", "-m", LOCATION]
            procs.append(_spawn(daemon, Path(logs) / "daemon.log"))
            _wait(lambda: _daemons_healthy(url), gate.timeout, "the daemon is healthy")
            run_id = _launch(url, SMOKE_JOB)
            status = _wait_run(url, run_id, gate.timeout)
        except StepFailed as exc:
            tails = "\n".join(_tail(Path(logs) / f"{n}.log") for n in ("webserver", "daemon"))
            raise StepFailed(f"{exc}\n{tails}") from None
        finally:
            for proc in reversed(procs):
                _stop(proc)
    if status != "SUCCESS":
        raise StepFailed(f"smoke run {run_id} of {SMOKE_JOB} ended {status}")
    return f"definitions load; webserver and daemon answer; smoke run {run_id} SUCCESS"


STEPS: tuple[tuple[str, Callable[[Gate], str]], ...] = (
    ("install", step_install),
    ("instance", step_instance),
    ("migrate", step_migrate),
    ("test", step_test),
    ("schedules", step_schedules),
    ("integrity", step_integrity),
    ("verify", step_verify),
)


def run_gate(gate: Gate, print_fn: Callable[[str], None] = print) -> int:
    """Run the steps in order; 0 when all pass, 1 at the first failure (named)."""
    started = time.monotonic()
    for number, (name, step) in enumerate(STEPS, start=1):
        began = time.monotonic()
        print_fn(f"==> [{number}/{len(STEPS)}] {name}")
        try:
            said = step(gate)
        except StepFailed as exc:
            print_fn(f"deploy: step {name} failed: {exc}")
            print_fn(f"deploy: stopped at step {number}/{len(STEPS)} ({name}); fix it and re-run")
            return 1
        print_fn(f"    ok in {time.monotonic() - began:.1f}s: {said}")
    print_fn(f"deploy: all {len(STEPS)} steps passed in {time.monotonic() - started:.0f}s")
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return mask_secrets(f"--- {path.stem}\n" + "\n".join(text))


def _graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise StepFailed(f"GraphQL errors: {payload['errors']}")
    return dict(payload["data"])


def _wait(ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise StepFailed(f"not ready within {timeout:.0f} s: {what}")


def _location_loaded(url: str) -> bool:
    data = _graphql(
        url,
        "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus "
        "locationOrLoadError { __typename ... on PythonError { message } } } } } }",
    )
    entries = data["workspaceOrError"]["locationEntries"]
    if not entries or entries[0]["loadStatus"] != "LOADED":
        return False
    loaded = entries[0]["locationOrLoadError"]
    if loaded["__typename"] == "PythonError":
        raise StepFailed(f"the code location fails to load: {loaded['message']}")
    return True


def _daemons_healthy(url: str) -> bool:
    data = _graphql(
        url, "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
    )
    statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    healthy = {s["daemonType"] for s in statuses if s["healthy"]}
    return {"SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= healthy


def _launch(url: str, job: str) -> str:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
    params = {"selector": {**selector, "jobName": job}, "runConfigData": {}}
    launched = _graphql(url, LAUNCH, {"params": params})["launchRun"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise StepFailed(f"could not launch {job}: {launched}")
    return str(launched["run"]["runId"])


def _wait_run(url: str, run_id: str, timeout: float) -> str:
    query = "query ($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = str(_graphql(url, query, {"id": run_id})["runOrError"]["status"])
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(2)
    raise StepFailed(f"smoke run {run_id} did not finish within {timeout:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the gate."""
    parser = argparse.ArgumentParser(prog="./run.sh deploy", description=__doc__.split("\n")[0])
    parser.add_argument("--full-tests", action="store_true", help="the whole suite, not smoke")
    parser.add_argument("--skip-tests", action="store_true", help="no tests (re-runs)")
    args = parser.parse_args(argv)
    return run_gate(Gate(full_tests=args.full_tests, skip_tests=args.skip_tests))


if __name__ == "__main__":
    sys.exit(main())
