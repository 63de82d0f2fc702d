"""Choice options of the generic jobs are enums: a typo fails before the run starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInvalidConfigError, validate_run_config

from dataproc_dagster.clickhouse.resource import ClickHouseResource
from dataproc_dagster.generic_jobs.http_to_clickhouse import PIPELINE
from dataproc_dagster.generic_jobs.metabase import METABASE_TO_CLICKHOUSE
from dataproc_dagster.loading.config import LoaderConfig
from dataproc_dagster.sources.http.config import HttpExtractConfig
from dataproc_dagster_tests.helpers.cli import job_execute_command, run_dagster

HTTP_JOB = PIPELINE.job
EXTRACT = "http_to_clickhouse__extract"
LOAD = "http_to_clickhouse__load"


def http_config(extract: dict[str, Any] | None = None, **load: Any) -> dict[str, Any]:
    """Run config of ``http_to_clickhouse`` with the given extract and load options."""
    return {
        "ops": {
            EXTRACT: {"config": {"url": "http://127.0.0.1:9/items", **(extract or {})}},
            LOAD: {"config": {"table": "items", **load}},
        }
    }


@pytest.mark.parametrize(
    ("config", "typo", "field"),
    [
        (http_config(mode="upsrt"), "upsrt", f"{LOAD}:config:mode"),
        (http_config(schema_drift="evolv"), "evolv", f"{LOAD}:config:schema_drift"),
        (
            http_config({"paginator": {"style": "page_numbr"}}),
            "page_numbr",
            f"{EXTRACT}:config:paginator:style",
        ),
        (
            http_config({"auth": {"kind": "beaer", "secret_env": "T"}}),
            "beaer",
            f"{EXTRACT}:config:auth:kind",
        ),
        (
            http_config({"auth": {"kind": "api_key", "location": "hedaer"}}),
            "hedaer",
            f"{EXTRACT}:config:auth:location",
        ),
        (http_config({"list_mode": "jsn"}), "jsn", f"{EXTRACT}:config:list_mode"),
    ],
)
def test_a_typo_in_a_choice_fails_before_the_run(
    clickhouse: ClickHouseResource, config: dict[str, Any], typo: str, field: str
) -> None:
    with pytest.raises(DagsterInvalidConfigError, match=typo) as caught:
        HTTP_JOB.execute_in_process(run_config=config, resources={"clickhouse": clickhouse})
    # The error names the option (its path in the run config), not only the bad value.
    assert field in str(caught.value)


def test_metabase_method_typo_fails_before_the_run() -> None:
    job = METABASE_TO_CLICKHOUSE.job
    extract = next(name for name in job.graph.node_names() if name.endswith("__extract"))
    load = next(name for name in job.graph.node_names() if name.endswith("__load"))
    config = {
        "ops": {
            extract: {"config": {"database_id": 1, "table_id": 2, "method": "exprt"}},
            load: {"config": {"table": "mb"}},
        }
    }
    with pytest.raises(DagsterInvalidConfigError, match="exprt") as caught:
        validate_run_config(job, config)
    assert f"{extract}:config:method" in str(caught.value)
    config["ops"][extract]["config"]["method"] = "export"
    config["ops"][load]["config"]["mode"] = "replac"
    with pytest.raises(DagsterInvalidConfigError, match="replac") as caught:
        validate_run_config(job, config)
    assert f"{load}:config:mode" in str(caught.value)
    config["ops"][load]["config"]["mode"] = "replace"
    assert validate_run_config(job, config)["ops"][extract]["config"]["method"] == "export"


def test_accepted_values_and_shapes_are_unchanged() -> None:
    config = http_config(
        {
            "paginator": {"style": "cursor", "cursor_path": "next"},
            "auth": {"kind": "api_key", "secret_env": "K", "name": "X-Key", "location": "query"},
            "list_mode": "json",
        },
        mode="upsert",
        key_columns=["id"],
        schema_drift="evolve",
    )
    resolved = validate_run_config(HTTP_JOB, config)["ops"]
    # The steps still receive plain strings.
    assert resolved[LOAD]["config"]["mode"] == "upsert"
    assert resolved[LOAD]["config"]["schema_drift"] == "evolve"
    assert resolved[EXTRACT]["config"]["paginator"]["style"] == "cursor"
    assert resolved[EXTRACT]["config"]["auth"]["kind"] == "api_key"
    assert resolved[EXTRACT]["config"]["auth"]["location"] == "query"
    assert resolved[EXTRACT]["config"]["list_mode"] == "json"
    defaults = validate_run_config(HTTP_JOB, http_config())["ops"]
    assert defaults[LOAD]["config"]["mode"] == "append"
    assert defaults[LOAD]["config"]["schema_drift"] == "freeze"


def test_dagster_job_execute_refuses_the_typo_first(data_dir: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "typo.yaml"
    config_file.write_text(yaml.safe_dump(http_config(mode="upsrt")))
    done = run_dagster(
        job_execute_command("http_to_clickhouse", config_file), data_dir, tmp_path / "home"
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "upsrt" in output and "RUN_START" not in output
    assert not (data_dir / "clickhouse").exists()  # nothing was opened, let alone written


def test_null_for_an_option_with_a_default_means_the_default() -> None:
    # Dagster lets null through validation for any option with a default (it hands the step
    # None); the step's model must then take the default, not fail when the step starts.
    config = http_config(
        {"headers": None, "params": None, "timeout": None, "retry": {"max_attempts": None}},
        key_columns=None,
        order_by=None,
    )
    resolved = validate_run_config(HTTP_JOB, config)["ops"]
    assert resolved[EXTRACT]["config"]["headers"] is None
    spec = HttpExtractConfig(**resolved[EXTRACT]["config"]).to_spec()
    assert spec == HttpExtractConfig(url="http://127.0.0.1:9/items").to_spec()
    assert LoaderConfig(**resolved[LOAD]["config"]) == LoaderConfig(table="items")
