"""Job factory and registry: bad definitions fail loading with the module or pipeline named."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from dataproc_dagster import create_clickhouse_loader, create_etl_pipeline, create_extractor
from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.pipeline.registry import discover_pipelines


def _extractor() -> object:
    return create_extractor(lambda: pd.DataFrame({"a": [1]}), name="one")


def test_job_has_extract_transform_load_in_order() -> None:
    pipeline = create_etl_pipeline(
        "orders",
        extractor=_extractor(),  # type: ignore[arg-type]
        transformers=[lambda df: df, lambda df: df.assign(b=1)],
        loader=create_clickhouse_loader("orders"),
        schedule="15 3 * * *",
        timezone="Europe/Berlin",
    )
    nodes = [n.name for n in pipeline.assets[0].node_def.nodes_in_topological_order]
    assert nodes == [
        "orders__extract",
        "orders__transform_1_lambda",
        "orders__transform_2_lambda",
        "orders__load",
    ]
    assert pipeline.schedule is not None
    assert pipeline.schedule.cron_schedule == "15 3 * * *"
    assert pipeline.schedule.execution_timezone == "Europe/Berlin"


def test_schedule_timezone_defaults_to_utc_explicitly() -> None:
    pipeline = create_etl_pipeline(
        "daily",
        extractor=_extractor(),
        loader=create_clickhouse_loader("t"),
        schedule="0 6 * * *",  # type: ignore[arg-type]
    )
    assert pipeline.schedule is not None and pipeline.schedule.execution_timezone == "UTC"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"schedule": "every day"}, "invalid cron string 'every day'"),
        ({"schedule": "0 6 * * *", "timezone": "Berlin"}, "invalid schedule timezone"),
        ({"loader": None}, "no loader"),
    ],
)
def test_invalid_pipeline_definitions_name_the_pipeline(
    kwargs: dict[str, object], expected: str
) -> None:
    arguments: dict[str, object] = {
        "extractor": _extractor(),
        "loader": create_clickhouse_loader("t"),
    }
    arguments.update(kwargs)
    with pytest.raises(ConfigError) as raised:
        create_etl_pipeline("sales", **arguments)  # type: ignore[arg-type]
    assert expected in str(raised.value)
    if "loader" not in kwargs:
        assert "pipeline sales" in str(raised.value)


def test_invalid_pipeline_name() -> None:
    with pytest.raises(ConfigError, match="invalid pipeline name"):
        create_etl_pipeline(
            "my-pipeline", extractor=_extractor(), loader=create_clickhouse_loader("t")
        )  # type: ignore[arg-type]


PIPELINE_MODULE = """
import pandas as pd
from dataproc_dagster import create_clickhouse_loader, create_etl_pipeline, create_extractor

pipeline = create_etl_pipeline(
    {name!r},
    extractor=create_extractor(lambda: pd.DataFrame({{"a": [1]}})),
    loader=create_clickhouse_loader("t"),
    schedule={cron!r},
)
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    name = f"pipes_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def _write(package: Path, module: str, text: str) -> None:
    (package / f"{module}.py").write_text(textwrap.dedent(text))


def test_registry_discovers_pipelines_sorted(package: Path) -> None:
    _write(package, "b_mod", PIPELINE_MODULE.format(name="beta", cron="0 1 * * *"))
    _write(package, "a_mod", PIPELINE_MODULE.format(name="alpha", cron=None))
    found = discover_pipelines(package.name)
    assert [p.name for p in found] == ["alpha", "beta"]
    assert found[1].module == f"{package.name}.b_mod"


def test_module_that_fails_to_import_is_named(package: Path) -> None:
    _write(package, "good", PIPELINE_MODULE.format(name="good", cron=None))
    _write(package, "broken", "import not_a_real_module_xyz\n")
    with pytest.raises(ConfigError) as raised:
        discover_pipelines(package.name)
    assert f"{package.name}.broken failed to import" in str(raised.value)
    assert "not_a_real_module_xyz" in str(raised.value)


def test_invalid_cron_in_a_module_names_the_module(package: Path) -> None:
    _write(package, "nightly", PIPELINE_MODULE.format(name="nightly", cron="61 * * * *"))
    with pytest.raises(ConfigError) as raised:
        discover_pipelines(package.name)
    assert f"{package.name}.nightly" in str(raised.value) and "cron" in str(raised.value)


def test_duplicate_pipeline_names_name_both_modules(package: Path) -> None:
    _write(package, "one", PIPELINE_MODULE.format(name="same", cron=None))
    _write(package, "two", PIPELINE_MODULE.format(name="same", cron=None))
    with pytest.raises(ConfigError) as raised:
        discover_pipelines(package.name)
    message = str(raised.value)
    assert "duplicate pipeline name 'same'" in message
    assert f"{package.name}.one" in message and f"{package.name}.two" in message


def test_executor_by_name_or_definition() -> None:
    from dagster import in_process_executor, multiprocess_executor

    def build(executor: object) -> object:
        return create_etl_pipeline(
            "ex",
            extractor=_extractor(),
            loader=create_clickhouse_loader("t"),
            executor=executor,  # type: ignore[arg-type]
        )

    assert build("in_process").job.executor_def is in_process_executor  # type: ignore[attr-defined]
    assert build("multiprocess").job.executor_def is multiprocess_executor  # type: ignore[attr-defined]
    custom = multiprocess_executor.configured({"max_concurrent": 2})
    assert build(custom).job.executor_def is custom  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unknown executor 'k8s'"):
        build("k8s")
