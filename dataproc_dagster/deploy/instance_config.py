"""The instance settings ``./run.sh`` installs into ``DAGSTER_HOME``, with the log level of runs.

A run whose config sets no loggers (launched from the UI's Launchpad or asset catalog, by a
schedule, sensor or backfill) gets Dagster's default console logger at the instance's
``python_logs.python_log_level``, or at DEBUG when there is none: ``./run.sh dev`` printed every
DEBUG event of every such run. The same setting is also the level Dagster gives the managed
framework loggers (``dataproc_dagster.*``) at each run's start, over ``LOG_LEVEL``. So the
shipped ``deploy/dagster.yaml`` leaves it out (a bare ``dagster`` command keeps ``LOG_LEVEL``),
and every ``./run.sh`` command installs the file with ``python_log_level`` set to ``LOG_LEVEL``
(the environment, else ``.env``, else INFO): runs print INFO lines, every event with
``LOG_LEVEL=DEBUG``, and the framework loggers keep ``LOG_LEVEL``.

Command line (``./run.sh`` calls it; a script: it imports neither Dagster nor the package)::

    python -P dataproc_dagster/deploy/instance_config.py install DAGSTER_HOME
    python -P dataproc_dagster/deploy/instance_config.py console DAGSTER_HOME

``install`` writes ``DAGSTER_HOME/dagster.yaml`` from ``deploy/dagster-postgres.yaml`` when
``DAGSTER_POSTGRES_URL`` is set, else from ``deploy/dagster.yaml``, when it differs from the
file there. ``console`` writes ``DAGSTER_HOME/console.yaml``, the run config of the console
logger that ``./run.sh job`` and ``./run.sh dg launch`` pass, and prints its path.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LEVEL = "INFO"
_BLOCK = "python_logs:"
_SETTING = (
    "  # Written by ./run.sh from LOG_LEVEL (deploy/instance_config.py): the console of runs\n"
    "  # without logger config, and the framework loggers' level in runs.\n"
    "  python_log_level: {level}\n"
)


def log_level(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> str:
    """``LOG_LEVEL`` from the environment, else from ``.env``, else INFO (also when invalid:
    the code location names an invalid value when it loads)."""
    environ = os.environ if environ is None else environ
    value = environ.get("LOG_LEVEL")
    if not value:
        path = env_file or Path(".env")
        value = (dotenv_values(path).get("LOG_LEVEL") if path.is_file() else None) or ""
    level = value.strip().upper()
    return level if level in LEVELS else DEFAULT_LEVEL


def render(source: str, level: str) -> str:
    """``source`` (a ``dagster.yaml``) with ``python_logs.python_log_level: level``.

    Raises:
        ValueError: ``source`` already sets ``python_log_level`` (it would be set twice).
    """
    if re.search(r"^\s*python_log_level\s*:", source, re.MULTILINE):
        raise ValueError("the instance settings set python_log_level already; remove it there")
    setting = _SETTING.format(level=level)
    lines = source.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.rstrip() == _BLOCK:
            return "".join([*lines[: index + 1], setting, *lines[index + 1 :]])
    return source + ("" if source.endswith("\n") or not source else "\n") + _BLOCK + "\n" + setting


def source_file(environ: Mapping[str, str] | None = None) -> Path:
    """The shipped instance settings for this environment (PostgreSQL or SQLite storage)."""
    environ = os.environ if environ is None else environ
    postgres = bool(environ.get("DAGSTER_POSTGRES_URL"))
    return DEPLOY / ("dagster-postgres.yaml" if postgres else "dagster.yaml")


def install(home: Path, source: Path | None = None, level: str | None = None) -> bool:
    """Write ``home/dagster.yaml`` (the shipped settings with the log level) when it differs.

    Returns:
        True when the file was written.
    """
    text = render((source or source_file()).read_text(), level or log_level())
    target = home / "dagster.yaml"
    if target.is_file() and target.read_text() == text:
        return False
    _write_whole(target, text)
    return True


def console_run_config(level: str | None = None) -> dict[str, Any]:
    """Run config of the console logger: INFO lines, or every event with LOG_LEVEL=DEBUG."""
    console = "DEBUG" if (level or log_level()) == "DEBUG" else "INFO"
    return {"loggers": {"console": {"config": {"log_level": console}}}}


def console_config(home: Path, level: str | None = None) -> Path:
    """Write :func:`console_run_config` to ``home/console.yaml`` and return its path."""
    path = home / "console.yaml"
    _write_whole(path, yaml.safe_dump(console_run_config(level)))
    return path


def _write_whole(path: Path, text: str) -> None:
    """Write ``path`` by replacing it whole: commands started together write it at once, and
    none may read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)


def main(argv: list[str]) -> int:
    """``install HOME`` or ``console HOME`` (see the module's docstring)."""
    if len(argv) != 2 or argv[0] not in ("install", "console"):
        print("usage: instance_config.py install|console DAGSTER_HOME", file=sys.stderr)
        return 2
    home = Path(argv[1])
    if argv[0] == "install":
        install(home)
    else:
        print(console_config(home))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
