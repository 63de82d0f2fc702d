"""What a step imports: the extract step of an HTTP pipeline never loads the ClickHouse engine.

Importing chDB costs about 300 MB and most of a second; a step that does not talk to ClickHouse
must not pay it (with the multiprocess executor every step is its own process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dataproc_dagster_tests.helpers.http_support import api_fixture  # noqa: F401
from dataproc_dagster_tests.servers.http_api import RunningApi

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from dataproc_dagster.definitions import defs
from dataproc_dagster.clickhouse.resource import ClickHouseResource
job = defs.get_job_def("http_to_clickhouse")
config = {"ops": {"http_to_clickhouse__extract": {"config": json.loads(sys.argv[1])}}}
result = job.execute_in_process(
    run_config=config,
    op_selection=["http_to_clickhouse__extract"],
    resources={"clickhouse": ClickHouseResource(url="chdb://" + sys.argv[2])},
)
rows = [e.event_specific_data.metadata["rows"].value for e in result.all_events
        if e.is_successful_output]
print(json.dumps({"rows": rows, "chdb": "chdb" in sys.modules}))
"""


def test_http_extract_step_does_not_import_the_clickhouse_engine(
    api: RunningApi, tmp_path: Path
) -> None:
    extract = {
        "url": api.url + "/pages",
        "paginator": {"style": "page_number", "total_pages_path": "meta.total_pages"},
        "records_path": "data.items",
    }
    env = dict(os.environ, DATAPROC_DATA_DIR=str(tmp_path / "data"))
    env.pop("CLICKHOUSE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(extract), str(tmp_path / "ch")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["rows"] == [len(api.state.records)]
    assert found["chdb"] is False
