"""One rule for every command: the process environment wins over ``.env``.

The settings (pydantic-settings) already read ``.env`` below the environment. Dagster's
command line, however, copies ``.env`` of the working directory *over* the environment before it
loads the code location (``dagster job execute``, ``dagster dev`` and the processes they start).
:func:`restore_process_environment` undoes that for the variables ``.env`` names, when the code
location loads. The values the process started with come from the copies that
``python -m dataproc_dagster.cli`` (``./run.sh job`` / ``dev`` / ``demo``) passes down as
``DATAPROC_SHELL__<NAME>``, else, for a bare ``dagster`` command, from the environment the
process was started with (``/proc/self/environ`` on Linux).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values

from dataproc_dagster.core.settings import get_settings

ENV_FILE = ".env"
SHELL_PREFIX = "DATAPROC_SHELL__"
_INITIAL_ENVIRONMENT = Path("/proc/self/environ")


def env_file_values(env_file: str | os.PathLike[str] = ENV_FILE) -> dict[str, str]:
    """The variables ``env_file`` sets (empty when there is no such file)."""
    path = Path(env_file)
    if not path.is_file():
        return {}
    return {name: value for name, value in dotenv_values(path).items() if value is not None}


def _initial_environment() -> dict[str, str]:
    """The environment this process was started with (Linux), before any ``.env`` was copied."""
    try:
        raw = _INITIAL_ENVIRONMENT.read_bytes()
    except OSError:
        return {}
    initial = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep:
            initial[os.fsdecode(name)] = os.fsdecode(value)
    return initial


def shell_copies(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """``DATAPROC_SHELL__<NAME>`` copies of the variables in ``names`` that ``environ`` sets."""
    return {f"{SHELL_PREFIX}{name}": environ[name] for name in names if name in environ}


def restore_process_environment(env_file: str | os.PathLike[str] = ENV_FILE) -> list[str]:
    """Put back the process's own values of the variables that ``.env`` overwrote.

    Only a variable that now holds exactly its ``.env`` value is restored, so a value the
    program itself set later stays.

    Returns:
        The names whose value was restored.
    """
    from_file = env_file_values(env_file)
    if not from_file:
        return []
    original = {k: v for k, v in _initial_environment().items() if k in from_file}
    for key, value in os.environ.items():
        name = key[len(SHELL_PREFIX) :]
        if key.startswith(SHELL_PREFIX) and name in from_file:
            original[name] = value
    restored = []
    for name, value in original.items():
        if os.environ.get(name) == from_file[name] and value != from_file[name]:
            os.environ[name] = value
            restored.append(name)
    if restored:
        get_settings.cache_clear()
    return sorted(restored)
