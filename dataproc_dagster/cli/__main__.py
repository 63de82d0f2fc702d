"""``dagster`` with the project's defaults: ``python -m dataproc_dagster.cli job execute ...``.

``./run.sh job``, ``dev`` and ``demo`` run Dagster's own command line through this module, which
adds three things and changes nothing else:

- the process environment wins over ``.env`` (see :mod:`dataproc_dagster.core.environment`);
- the warnings every command printed and nobody can act on are not shown (the
  ``job execute`` and ``dev`` supersession notices, the yaml logging config beta notice), here
  and in the processes Dagster starts;
- an invalid run config (an unknown key, a typo in a choice) prints its message, not a long
  traceback with the message at the bottom.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

from dataproc_dagster.core.environment import env_file_values, shell_markers

# Message starts of the known warnings (PYTHONWARNINGS takes plain message prefixes; no commas).
KNOWN_WARNINGS = (
    ("SupersessionWarning", "Function `job_execute_command` is superseded"),
    ("SupersessionWarning", "Function `dev_command` is superseded"),
    ("BetaWarning", "Handling yaml-defined logging configuration is currently in beta"),
    # Dagster's own conversion of a component's asset checks (repository_data.py) passes it.
    ("BetaWarning", "Parameter `execution_type` of function `AssetsDefinition.__init__`"),
)


def quiet_known_warnings(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Ignore :data:`KNOWN_WARNINGS` in this process and in the processes it starts."""
    for _, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    filters = [f"ignore:{message}" for _, message in KNOWN_WARNINGS]
    existing = environ.get("PYTHONWARNINGS")
    environ["PYTHONWARNINGS"] = ",".join([*filters, *([existing] if existing else [])])


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dagster ARGS`` with the project's defaults; the exit code of the command."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Copies of the shell's values and the names it set, for the code location to restore
    # after Dagster has copied .env over them (here and in every process Dagster starts,
    # also after a reload, when .env may have changed).
    os.environ.update(shell_markers(os.environ, env_file_values()))
    quiet_known_warnings()

    # Dagster is imported only now, after the environment above is in place.
    from dagster import DagsterInvalidConfigError

    # Dagster's own command line, run in this process so that the environment above applies:
    # Dagster has no public entry point for it (a subprocess would add a second start-up).
    from dagster._cli import ENV_PREFIX, cli

    try:
        cli.main(args=args, prog_name="dagster", auto_envvar_prefix=ENV_PREFIX)
    except DagsterInvalidConfigError as exc:
        print(f"error: invalid run config: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
