"""``python -m dataproc_dagster.cli.integrity`` (``./run.sh check``): the integrity checks.

Prints one line per check (or JSON) and exits 1 when one fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from dataproc_dagster.components.discovery import discover_yaml_pipelines
from dataproc_dagster.core.errors import DataprocError
from dataproc_dagster.core.settings import get_settings
from dataproc_dagster.integrity import checks as integrity
from dataproc_dagster.pipeline.registry import discover_pipelines
from dataproc_dagster.resources import build_resources


def run_default_checks() -> list[integrity.CheckResult]:
    """Every check with the code location's resources and its discovered pipelines."""
    resources = build_resources(get_settings())
    return integrity.run_all_checks(
        clickhouse=resources["clickhouse"],
        metabase=resources.get("metabase"),
        pipelines=[*discover_pipelines(), *discover_yaml_pipelines()],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dataproc_dagster.cli.integrity [--json]``: print the checks.

    Returns 1 when one fails.
    """
    parser = argparse.ArgumentParser(
        prog="python -m dataproc_dagster.cli.integrity",
        description="Integrity checks: ClickHouse, Metabase, migrations, unfinished loads, "
        "pipeline tables.",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    try:
        results = run_default_checks()
    except DataprocError as exc:  # settings or pipelines that do not load
        print(f"integrity check could not start: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2, default=str))
    else:
        print(integrity.format_report(results))
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
