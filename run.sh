#!/usr/bin/env bash
# dataproc-dagster task runner. Every command sets up .venv first (reused while pyproject.toml
# is unchanged), so each one works on a fresh machine that has only Python 3.11+.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.installed-hash"
export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT/.dagster_home}"

usage() {
  cat <<'USAGE'
Usage: ./run.sh COMMAND [ARGS]

  demo                      set up, migrate, run the sample pipeline, print what landed
  test [unit|integration|performance|e2e] [--backend embedded|server|both]
                            run the test suite (all by default); ClickHouse tests run on the
                            embedded engine and a local server unless --backend picks one;
                            JSON report + coverage in reports/
  dev [--server] [--postgres]
                            Dagster UI + daemon on http://127.0.0.1:${DAGSTER_PORT:-3000}
                            (--server: on a local ClickHouse server, started if needed;
                            --postgres: the instance in PostgreSQL, DAGSTER_POSTGRES_URL or
                            the local one, started if needed)
  postgres [start|stop|status] [--port N] [--data DIR]
                            a local PostgreSQL for the instance (prints DAGSTER_POSTGRES_URL)
  clickhouse [start|stop|status] [--port N] [--data DIR]
                            a local ClickHouse server for development and tests
  job NAME [config.yaml]    run a job with `dagster job execute` (console at INFO; every
                            event with LOG_LEVEL=DEBUG); the instance in PostgreSQL when
                            DAGSTER_POSTGRES_URL is set
  deploy [--full-tests|--skip-tests]
                            the deployment gate on this machine: install, instance, migrate,
                            test, schedules, integrity, verify (stops at the first failure)
  worker [NAME]             a Celery worker for steps (CELERY_BROKER_URL; the instance, chunk
                            store and ClickHouse server shared with the other workers)
  dg ARGS                   Dagster's `dg` command line on this project and instance
                            (dg check defs, dg list defs, dg launch --job NAME, dg dev)
  resume [RUN_ID] [--job NAME]
                            re-execute a failed or killed run from failure (default: the latest)
  check                     integrity checks (exit code != 0 when one fails)
  cleanup_chunks [--dry-run] remove chunk folders of runs past CHUNK_RETENTION_DAYS or
                            re-executed successfully
  migrate                   apply pending migrations
  migrate_status            show migration status
  migrate_rollback N        roll back the last N migrations
  bench [--backend embedded|server|both] [--sizes N ...]
                            benchmarks on the embedded engine and a ClickHouse server side by
                            side (CLICKHOUSE_URL, or a local server); figures, not pass/fail
  lint                      ruff, mypy and the import contract (test runs them first too)
USAGE
}

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "run.sh: Python 3.11 or newer is required (python3 --version)" >&2
  return 1
}

ensure_venv() {
  local py want have
  if [ ! -x "$VENV/bin/python" ]; then
    py="$(find_python)"
    echo "==> creating $VENV with $($py --version)"
    "$py" -m venv "$VENV"
  fi
  want="$(cat pyproject.toml setup.py | "$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
  have="$(cat "$STAMP" 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    echo "==> installing dependencies into .venv (once; reused until pyproject.toml changes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    # setuptools warns about editable installs on every first install; nothing to act on.
    PYTHONWARNINGS="ignore:Editable installation" \
      "$VENV/bin/python" -m pip install --quiet -e ".[dev]" 2>&1 | grep -v "WARNING: Location" || true
    "$VENV/bin/python" -c "import dataproc_dagster.core.settings, dagster, chdb" >/dev/null
    echo "$want" > "$STAMP"
  fi
  export PATH="$VENV/bin:$PATH"
  mkdir -p "$DAGSTER_HOME"
  install_instance_config
}

# The instance settings: deploy/dagster-postgres.yaml when DAGSTER_POSTGRES_URL is set (the
# instance in PostgreSQL), else deploy/dagster.yaml (SQLite under DAGSTER_HOME), written into
# DAGSTER_HOME whenever it differs, with python_logs.python_log_level set to LOG_LEVEL: runs
# launched from the UI, schedules and backfills print INFO lines, not every DEBUG event.
install_instance_config() {
  if [ -n "${DAGSTER_POSTGRES_URL:-}" ]; then
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; dagster-postgres uses psycopg2.
    case "$DAGSTER_POSTGRES_URL" in
      postgresql://*|postgres://*)
        DAGSTER_POSTGRES_URL="postgresql+psycopg2://${DAGSTER_POSTGRES_URL#*://}" ;;
    esac
    export DAGSTER_POSTGRES_URL
  fi
  python -P dataproc_dagster/deploy/instance_config.py install "$DAGSTER_HOME"
}

# A local PostgreSQL for the instance (started when none runs; its URL in DAGSTER_POSTGRES_URL).
use_local_postgres() {
  if [ -z "${DAGSTER_POSTGRES_URL:-}" ]; then
    local server=dataproc_dagster/deploy/postgres_server.py
    DAGSTER_POSTGRES_URL="$(python -P "$server" status 2>/dev/null || python -P "$server" start)"
    export DAGSTER_POSTGRES_URL
    echo "==> the instance is in the local PostgreSQL at $DAGSTER_POSTGRES_URL"
  fi
  install_instance_config
}

# `python -m dataproc_dagster.cli ...` is Dagster's command line with the project's defaults: the
# environment wins over .env, known warnings are not shown, an invalid run config prints its
# message first.

# Run config for the console: INFO lines (rows, seconds, rows/s, peak memory, warnings, errors)
# instead of every Dagster event, or every event when LOG_LEVEL is DEBUG (environment, then .env).
console_config() { python -P dataproc_dagster/deploy/instance_config.py console "$DAGSTER_HOME"; }

# Create the instance storage once, under a lock, so that runs started together on a fresh
# DAGSTER_HOME do not race to create Dagster's tables.
prepare_instance() { python -m dataproc_dagster.cli.instance_setup; }

has_migrations_cli() { python -c "import dataproc_dagster.cli.migrations" >/dev/null 2>&1; }

# `CLICKHOUSE_URL=$(./run.sh clickhouse status) ./run.sh job ...` with no server running sets an
# empty CLICKHOUSE_URL: refuse it instead of running on the embedded engine in silence.
refuse_empty_clickhouse_url() {
  if [ "${CLICKHOUSE_URL+set}" = set ] && [ -z "${CLICKHOUSE_URL//[[:space:]]/}" ]; then
    echo "run.sh: CLICKHOUSE_URL is set but empty (no server running? \`./run.sh clickhouse" \
      "status\` prints nothing then; \`./run.sh clickhouse start\` starts one). Unset it to use" \
      "the embedded engine." >&2
    exit 2
  fi
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  demo|dev|job|dg|resume|check|cleanup_chunks|migrate|migrate_status|migrate_rollback|bench)
    refuse_empty_clickhouse_url ;;
esac
case "$cmd" in
  demo)
    ensure_venv
    prepare_instance
    if has_migrations_cli; then
      echo "==> applying migrations"
      python -m dataproc_dagster.cli.migrations up
    fi
    echo "==> running the sample pipeline 'penguins' with dagster job execute"
    python -m dataproc_dagster.cli job execute -m dataproc_dagster -j penguins -c "$(console_config)"
    echo "==> what landed"
    python -m dataproc_dagster.cli.show_table penguins penguin_species_stats
    ;;
  test)
    ensure_venv
    mkdir -p reports
    target="dataproc_dagster_tests"
    if [ $# -gt 0 ]; then
      case "$1" in
        unit|integration|performance|e2e) target="dataproc_dagster_tests/$1"; shift ;;
      esac
    fi
    if [ -x "$ROOT/dataproc_dagster_tests/e2e/ensure_browser.sh" ] && \
       { [ "$target" = "dataproc_dagster_tests" ] || [ "$target" = "dataproc_dagster_tests/e2e" ]; }; then
      "$ROOT/dataproc_dagster_tests/e2e/ensure_browser.sh" || echo "run.sh: no browser; UI screenshot tests will say why they skip" >&2
    fi
    echo "==> ruff check, ruff format --check, mypy, import contract"
    ruff check dataproc_dagster dataproc_dagster_tests
    ruff format --check dataproc_dagster dataproc_dagster_tests
    mypy dataproc_dagster
    lint-imports --no-cache
    set +e
    python -m pytest "$target" "$@" --strict-markers \
      --json-report --json-report-file=reports/test-report.json \
      --cov=dataproc_dagster --cov-report=term:skip-covered --cov-report=json:reports/coverage.json
    status=$?
    set -e
    if [ -f reports/coverage.json ]; then
      python -c "import json; t=json.load(open('reports/coverage.json'))['totals']; print(f\"coverage: {t['percent_covered']:.1f}% of {t['num_statements']} statements\")"
    fi
    exit $status
    ;;
  dev)
    ensure_venv
    server=0
    while [ $# -gt 0 ]; do
      case "$1" in
        --server) server=1; shift ;;
        --postgres) use_local_postgres; shift ;;
        *) break ;;
      esac
    done
    prepare_instance
    if [ "$server" = 1 ]; then
      # A local ClickHouse server for this session (reused when one already runs); stopped on exit
      # only when this command started it.
      if url="$(python -P dataproc_dagster/clickhouse/server.py status 2>/dev/null)"; then
        echo "==> using the local ClickHouse server at $url"
      else
        url="$(python -P dataproc_dagster/clickhouse/server.py start)"
        trap 'python -P dataproc_dagster/clickhouse/server.py stop' EXIT
        echo "==> started a local ClickHouse server at $url (stopped when dev exits)"
      fi
      export CLICKHOUSE_URL="$url"
      python -m dataproc_dagster.cli.pools
      python -m dataproc_dagster.cli dev -m dataproc_dagster -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}" "$@"
      exit $?
    fi
    python -m dataproc_dagster.cli.pools
    exec python -m dataproc_dagster.cli dev -m dataproc_dagster -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}" "$@"
    ;;
  postgres)
    ensure_venv
    # As a script: it needs neither Dagster nor the package (fast start and stop).
    exec python -P dataproc_dagster/deploy/postgres_server.py "$@"
    ;;
  clickhouse)
    ensure_venv
    # As a script: it needs neither Dagster nor the package (fast start and stop).
    exec python -P dataproc_dagster/clickhouse/server.py "$@"
    ;;
  job)
    ensure_venv
    prepare_instance
    [ $# -ge 1 ] || { echo "usage: ./run.sh job NAME [config.yaml]" >&2; exit 2; }
    name="$1"; shift
    python -m dataproc_dagster.cli.pools >/dev/null
    console="$(console_config)"
    if [ $# -ge 1 ]; then
      # A logger setting in the user's file wins: later -c files override earlier ones.
      exec python -m dataproc_dagster.cli job execute -m dataproc_dagster -j "$name" -c "$console" -c "$1"
    fi
    exec python -m dataproc_dagster.cli job execute -m dataproc_dagster -j "$name" -c "$console"
    ;;
  deploy)
    # The deployment gate: install (ensure_venv), instance, migrate, test, schedules,
    # integrity, verify; stops at the first failing step (docs/operations.md).
    ensure_venv
    exec python -m dataproc_dagster.cli.deploy "$@"
    ;;
  worker)
    ensure_venv
    prepare_instance
    # A Celery worker for steps of jobs on dagster_celery's executor (docs/operations.md).
    exec python -m dataproc_dagster.cli.worker "$@"
    ;;
  dg)
    ensure_venv
    prepare_instance
    # Same DAGSTER_HOME, settings and working directory as `job` and `dev`; dg finds the project
    # through [tool.dg] in pyproject.toml. VIRTUAL_ENV tells dg which environment is active.
    export VIRTUAL_ENV="$VENV"
    # As for `job`: the known warnings nobody can act on are not shown, and `dg launch` prints
    # INFO lines (every event with LOG_LEVEL=DEBUG) unless a run config of the user sets loggers
    # (files listed first take precedence; --config-json cannot be combined with a file).
    PYTHONWARNINGS="$(python -c 'import os; from dataproc_dagster.cli.__main__ import quiet_known_warnings as q; q(); print(os.environ["PYTHONWARNINGS"])')"
    export PYTHONWARNINGS
    if [ "${1:-}" = launch ] && ! printf '%s\n' "$@" | grep -q -- '^--config-json'; then
      exec dg "$@" --config "$(console_config)"
    fi
    exec dg "$@"
    ;;
  resume)
    ensure_venv
    exec python -m dataproc_dagster.cli.resume "$@"
    ;;
  check)
    ensure_venv
    exec python -m dataproc_dagster.cli.integrity "$@"
    ;;
  cleanup_chunks)
    ensure_venv
    exec python -m dataproc_dagster.cli.chunks "$@"
    ;;
  migrate)
    ensure_venv
    exec python -m dataproc_dagster.cli.migrations up "$@"
    ;;
  migrate_status)
    ensure_venv
    exec python -m dataproc_dagster.cli.migrations status "$@"
    ;;
  migrate_rollback)
    ensure_venv
    [ $# -ge 1 ] || { echo "usage: ./run.sh migrate_rollback N" >&2; exit 2; }
    exec python -m dataproc_dagster.cli.migrations down "$@"
    ;;
  bench)
    ensure_venv
    # Pipeline and HTTP figures on the embedded engine and a ClickHouse server (CLICKHOUSE_URL,
    # or a local server started for the run), then Metabase and migrations, then a summary.
    python -m dataproc_dagster_tests.performance.run_benchmarks "$@"
    ;;
  lint)
    ensure_venv
    ruff check dataproc_dagster dataproc_dagster_tests
    ruff format --check dataproc_dagster dataproc_dagster_tests
    mypy dataproc_dagster
    lint-imports --no-cache
    ;;
  help|-h|--help) usage ;;
  *) usage; exit 2 ;;
esac
