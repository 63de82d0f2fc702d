"""A real Dagster deployment for the end-to-end tests: ``dagster-webserver`` and ``dagster-daemon``
as subprocesses on a temporary ``DAGSTER_HOME`` (``deploy/dagster.yaml`` as ``./run.sh`` installs
it), a free port on 127.0.0.1, and a GraphQL client; plus the headless Chromium helpers.

Every process started here runs in its own session (process group) and is stopped by its pid
(SIGTERM to the group, SIGKILL after a grace period), also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dataproc_dagster.deploy import instance_config

REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LOCATION = "dataproc_dagster"
REPOSITORY = "__repository__"
SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
# The mutation the launchpad's "Launch Run" button sends.
LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_tool(name: str) -> str:
    """The console script ``name`` of the running interpreter's environment."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@dataclass
class Proc:
    """A started subprocess and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the process group led by this pid, then SIGKILL if it does not end."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        # Children (code server, run workers) share the group: make sure none is left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=10)
        self.log_file.close()

    def tail(self, lines: int = 40) -> str:
        """The last lines of the process's output (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class DagsterStack:
    """Webserver + daemon on a temporary instance; use :meth:`start` / :meth:`stop`."""

    root: Path
    port: int = field(default_factory=free_port)
    procs: list[Proc] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DAGSTER_", "CLICKHOUSE_", "METABASE_"))
        }
        env.update(
            DAGSTER_HOME=str(self.home),
            DATAPROC_DATA_DIR=str(self.data_dir),
            DATAPROC_LOG_DIR=str(self.log_dir),
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        return env

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        log_path = self.root / f"{name}.log"
        log_file = log_path.open("wb")
        popen = subprocess.Popen(
            argv,
            cwd=self.root,  # not the repository: no developer .env leaks in
            env=self.env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen, log_path, log_file)
        self.procs.append(proc)
        return proc

    def prepare(self) -> None:
        """Create the instance and data folders; the instance settings as ``./run.sh`` installs
        them (``deploy/dagster.yaml`` with ``python_log_level`` from ``LOG_LEVEL``)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        instance_config.install(self.home, DAGSTER_YAML)

    def start(self, timeout: float = 180.0) -> None:
        """Start the webserver, wait until the code location is loaded, then the daemon (one
        after the other: both would otherwise create the fresh SQLite storage at once)."""
        self.prepare()
        deadline = time.monotonic() + timeout
        self._spawn(
            "webserver",
            [
                venv_tool("dagster-webserver"),
                "-m",
                LOCATION,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
        )
        self._wait(deadline, self._location_loaded, "code location loaded")
        self._spawn("daemon", [venv_tool("dagster-daemon"), "run", "-m", LOCATION])
        self._wait(deadline, self._daemons_healthy, "daemons healthy")

    def _wait(self, deadline: float, ready: Any, what: str) -> None:
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
            try:
                if ready():
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs)
        raise TimeoutError(f"not {what} in time:\n{logs}")

    def _location_loaded(self) -> bool:
        data = self.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        entries = data["workspaceOrError"]["locationEntries"]
        if not entries or entries[0]["loadStatus"] != "LOADED":
            return False
        loaded = entries[0]["locationOrLoadError"]
        if loaded["__typename"] == "PythonError":
            raise RuntimeError(f"code location failed to load: {loaded['message']}")
        return True

    def _daemons_healthy(self) -> bool:
        data = self.graphql(
            "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
        )
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        wanted = {"SCHEDULER", "QUEUED_RUN_COORDINATOR"}
        healthy = {s["daemonType"] for s in statuses if s["healthy"]}
        return wanted <= healthy

    def stop(self) -> None:
        """Stop every started process by its pid (daemon first)."""
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a GraphQL query to the webserver; return ``data`` (raise on ``errors``)."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return dict(payload["data"])


def find_browser() -> str | None:
    """The Chromium binary, or ``None``."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def browse(
    browser: str, url: str, profile: Path, *, screenshot: Path | None = None, wait_ms: int = 20000
) -> str:
    """Load ``url`` in headless Chromium; return the DOM after scripts ran ``wait_ms`` of virtual
    time, and save a screenshot when asked. The browser process is stopped by its pid."""
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1600,1000",
        f"--virtual-time-budget={wait_ms}",
    ]
    dom = _run_browser([*common, "--dump-dom", url])
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        _run_browser([*common, f"--screenshot={screenshot}", url])
    return dom


def _run_browser(argv: list[str], timeout: float = 120.0) -> str:
    popen = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        out, _err = popen.communicate(timeout=timeout)
    finally:
        # The browser and any helper (zygote, GPU) left in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=10)
    return out.decode("utf-8", errors="replace")


def launch_and_wait(
    stack: DagsterStack, job: str, run_config: dict[str, Any], run_query: str
) -> dict[str, Any]:
    """Launch ``job`` with ``run_config`` as the launchpad does, then poll ``run_query``
    (which takes ``$runId`` and returns ``runOrError { status }``) until the run ends."""
    params = {"selector": {**SELECTOR, "jobName": job}, "runConfigData": run_config}
    launched = stack.graphql(LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        data = stack.graphql(run_query, {"runId": run_id})
        if data["runOrError"]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return {"run_id": run_id, **data}
        time.sleep(1)
    raise TimeoutError(f"run {run_id} did not finish:\n{stack.procs[-1].tail()}")
