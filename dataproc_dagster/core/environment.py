"""One rule for every command: the process environment wins over ``.env``.

The settings (pydantic-settings) already read ``.env`` below the environment. Dagster's
command line, however, copies ``.env`` of the working directory *over* the environment before it
loads the code location (``dagster job execute``, ``dagster dev`` and the processes they start).
:func:`restore_process_environment` undoes that for the variables ``.env`` names, when the code
location loads. The values the process started with come from the copies that
``python -m dataproc_dagster.cli`` (``./run.sh job`` / ``dev`` / ``demo``) passes down as
``DATAPROC_SHELL__<NAME>``, else, for a bare ``dagster`` command, from the environment the
process was started with (``/proc/self/environ`` on Linux).

A process that ``dagster dev`` starts later (the code server after *Reload*, a run worker)
inherits the ``.env`` values of the moment ``dagster dev`` started. To tell those from the
user's own variables, ``python -m dataproc_dagster.cli`` also passes down the names the shell
set (``DATAPROC_SHELL_NAMES``) and the names ``.env`` set when the command started
(``DATAPROC_ENV_FILE_NAMES``): every load then takes the shell's value, else the current
``.env`` value, else none, so an edited, added or removed ``.env`` entry holds after a reload.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.settings import get_settings

ENV_FILE = ".env"
SHELL_PREFIX = "DATAPROC_SHELL__"
SHELL_NAMES = "DATAPROC_SHELL_NAMES"
ENV_FILE_NAMES = "DATAPROC_ENV_FILE_NAMES"
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


def shell_markers(environ: Mapping[str, str], env_file: Mapping[str, str]) -> dict[str, str]:
    """What ``python -m dataproc_dagster.cli`` passes down about the user's environment.

    Args:
        environ: The shell's environment, before Dagster copies ``.env`` over it.
        env_file: The variables ``.env`` sets now.

    Returns:
        The ``DATAPROC_SHELL__<NAME>`` copies of the variables both set, and the names the shell
        set (``DATAPROC_SHELL_NAMES``) and ``.env`` set (``DATAPROC_ENV_FILE_NAMES``).
    """
    shell_names = sorted(n for n in environ if not n.startswith(SHELL_PREFIX) and "," not in n)
    return {
        **shell_copies(environ, env_file),
        SHELL_NAMES: ",".join(shell_names),
        ENV_FILE_NAMES: ",".join(sorted(env_file)),
    }


def _names(value: str | None) -> set[str]:
    return {name for name in (value or "").split(",") if name}


def _settle_from_markers(from_file: dict[str, str], initial: dict[str, str]) -> list[str]:
    """Apply the rule with the names the CLI passed down: shell, then current ``.env``, then
    unset; only variables that hold a ``.env`` value (current or inherited) are changed."""
    shell_names = _names(os.environ.get(SHELL_NAMES))
    started_with = _names(os.environ.get(ENV_FILE_NAMES))
    changed = []
    for name in sorted(started_with | set(from_file)):
        if name in shell_names:
            wanted = os.environ.get(f"{SHELL_PREFIX}{name}", initial.get(name))
        else:
            wanted = from_file.get(name)
        current = os.environ.get(name)
        if current == wanted:
            continue
        # A value neither from .env nor inherited was set by the program itself: it stays.
        if current is not None and current not in (from_file.get(name), initial.get(name)):
            continue
        if wanted is None:
            del os.environ[name]
        else:
            os.environ[name] = wanted
        changed.append(name)
    return changed


def restore_process_environment(env_file: str | os.PathLike[str] = ENV_FILE) -> list[str]:
    """Put back the process's own values of the variables that ``.env`` overwrote.

    Only a variable that now holds exactly its ``.env`` value (or, under
    ``python -m dataproc_dagster.cli``, the value it inherited) is changed, so a value the
    program itself set later stays. Under that command a variable that ``.env`` no longer
    sets, and the shell never set, is removed (a secret deleted from ``.env`` before a reload).

    Returns:
        The names whose value was restored, updated or removed.
    """
    from_file = env_file_values(env_file)
    if SHELL_NAMES in os.environ:
        changed = _settle_from_markers(from_file, _initial_environment())
        if changed:
            get_settings.cache_clear()
        return changed
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


def load_env_file(env_file: str | os.PathLike[str] = ENV_FILE) -> list[str]:
    """Set the variables of ``env_file`` that the process environment does not set.

    For command lines that do not go through Dagster's (``resume``): the same rule, the
    environment wins over ``.env``.

    Returns:
        The names taken from ``env_file``.
    """
    added = []
    for name, value in env_file_values(env_file).items():
        if name not in os.environ:
            os.environ[name] = value
            added.append(name)
    if added:
        get_settings.cache_clear()
    return sorted(added)


def setting(name: str, default: str | None = None) -> str:
    """A pipeline's own setting (a URL, a host, a table): the environment, then ``.env``.

    The rule of every command holds: a variable set in the environment (``NAME=... ./run.sh job
    ...``) wins over ``.env``, and the default comes last. Call it in the pipeline module: each
    run loads the code location afresh in its own process, so each run reads the value current
    at its start (after a reload, for the webserver's view). Pass secrets by name instead
    (``bearer("TOKEN_VAR")``, ``EnvVar``), so that their value is read inside the step.

    Args:
        name: The environment variable.
        default: The value when neither the environment nor ``.env`` sets it.

    Raises:
        ConfigError: Neither sets it and there is no default.
    """
    restore_process_environment()
    value = os.environ.get(name)
    if value is None:
        value = env_file_values().get(name)
    if value is None:
        value = default
    if value is None:
        raise ConfigError(
            f"setting {name} is not set",
            fix=f"export {name}=... or add it to .env (.env.example lists the settings)",
        )
    return value
