"""Logging through Dagster with the shipped ``deploy/dagster.yaml``: LOG_LEVEL, capture of the
framework loggers into the run's event log, log files, and no secret anywhere in the event log."""

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    DagsterInstance,
    EnvVar,
    OpExecutionContext,
    instance_for_test,
    job,
    op,
)
from dagster._serdes import serialize_value

from dataproc_dagster.core.settings import get_settings, load_settings
from dataproc_dagster.deploy import instance_config
from dataproc_dagster.integrity import checks as integrity
from dataproc_dagster.observability import logging as log_setup
from dataproc_dagster.resources import register_resource_secrets
from dataproc_dagster.sources.http.resource import HttpResource
from dataproc_dagster.sources.metabase.resource import MetabaseResource
from dataproc_dagster_tests.helpers.cli import REPO
from dataproc_dagster_tests.servers.http_api import ApiState, serve_api
from dataproc_dagster_tests.servers.metabase_standin import MetabaseStandin

DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"
API_KEY = "ak_live_51f0c9e2d7b84a36"
PASSWORD = "pw-Zq81-horse-staple"
TOKEN = "tok_3c1f5e7a9b2d4f6e8a0b"
SECRETS = (API_KEY, PASSWORD, TOKEN)


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    """An instance configured by the repository's deploy/dagster.yaml, logs under tmp."""
    monkeypatch.setenv("DATAPROC_LOG_DIR", str(tmp_path / "logs"))
    settings = yaml.safe_load(DAGSTER_YAML.read_text())
    with instance_for_test(overrides=settings) as test_instance:
        yield test_instance


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PROBE_API_KEY", API_KEY)
    monkeypatch.setenv("PROBE_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv("METABASE_PASSWORD", PASSWORD)
    for name in ("METABASE_BASE_URL", "METABASE_API_KEY", "METABASE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    level = log_setup.get_logger().level
    get_settings.cache_clear()
    yield
    log_setup.get_logger().setLevel(level)
    get_settings.cache_clear()


@op(required_resource_keys={"bearer_api", "key_api"})
def call_apis(context: OpExecutionContext) -> None:
    """Real requests with a bearer token and an API key in the query string."""
    for key in ("bearer_api", "key_api"):
        resource: HttpResource = getattr(context.resources, key)
        source = resource.source(pipeline="secrets_probe", log=context.log.warning)
        with source.client() as client:
            page = source.get(client, resource.resolve_url("single"))
        context.log.info(f"{key}: {len(page.payload)} records from {page.url}")

    async def fetch_async() -> int:
        resource: HttpResource = context.resources.key_api
        source = resource.source(pipeline="secrets_probe")
        async with source.async_client(connections=2) as client:
            page = await source.aget(client, resource.resolve_url("offset"), {"limit": 5})
        return page.status

    assert asyncio.run(fetch_async()) == 200


@op(required_resource_keys={"metabase"})
def call_metabase(context: OpExecutionContext) -> None:
    """Log in to Metabase with the password and report the check."""
    result = integrity.check_metabase(context.resources.metabase)
    log_setup.get_logger("integrity").info(result.line())
    assert result.status == integrity.PASSED, result.summary


@op(required_resource_keys={"bearer_api", "key_api", "metabase"})
def careless_step(context: OpExecutionContext) -> None:
    """What a careless user step might log: every secret, through both kinds of logger."""
    api = context.resources.key_api
    url = f"{api.base_url}/single?apikey={API_KEY}&page=1"
    log_setup.get_logger("pipelines.careless").warning(
        "calling %s with Authorization: Bearer %s as analyst / password=%s", url, TOKEN, PASSWORD
    )
    context.log.info(f"token {TOKEN}, key {API_KEY}, password {PASSWORD}")
    logging.getLogger("dataproc_dagster.pipelines.careless.sub").error(
        "retrying %s", f"https://user:{PASSWORD}@example.com/x?token={TOKEN}"
    )


@job(name="secrets_probe")
def secrets_probe() -> None:
    call_apis()
    call_metabase()
    careless_step()


def run_probe(instance: DagsterInstance, bearer_url: str, key_url: str, metabase_url: str) -> Any:
    log_setup.configure_logging(load_settings())
    resources = {
        "bearer_api": HttpResource(
            base_url=bearer_url, auth_kind="bearer", secret=EnvVar("PROBE_BEARER_TOKEN")
        ),
        "key_api": HttpResource(
            base_url=key_url,
            auth_kind="api_key",
            api_key_name="apikey",
            api_key_location="query",
            secret=EnvVar("PROBE_API_KEY"),
        ),
        "metabase": MetabaseResource(
            base_url=metabase_url,
            username="analyst@example.com",
            password=EnvVar("METABASE_PASSWORD"),
        ),
    }
    return secrets_probe.execute_in_process(resources=resources, instance=instance)


@contextmanager
def probe_servers() -> Iterator[tuple[Any, Any, MetabaseStandin]]:
    """An API taking a bearer token, one taking a key in the query, and a Metabase stand-in."""
    with (
        serve_api(ApiState(auth=("bearer", TOKEN))) as bearer_api,
        serve_api(ApiState(auth=("query", "apikey", API_KEY))) as key_api,
        MetabaseStandin(password=PASSWORD) as metabase,
    ):
        yield bearer_api, key_api, metabase


def event_log_text(instance: DagsterInstance, run_id: str) -> tuple[str, list[str]]:
    """Every stored event record of the run, serialised, and the user-visible messages."""
    entries = instance.all_logs(run_id)
    run = instance.get_run_by_id(run_id)
    text = "\n".join(serialize_value(e) for e in entries) + serialize_value(run)
    messages = [e.user_message for e in entries]
    return text, messages


def test_no_secret_in_event_log_and_log_files(
    instance: DagsterInstance,
    secrets_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    with probe_servers() as (bearer_api, key_api, metabase):
        result = run_probe(instance, bearer_api.url, key_api.url, metabase.base_url)
    assert result.success
    text, messages = event_log_text(instance, result.run_id)
    for secret in SECRETS:
        assert secret not in text, f"a secret reached the event log: {secret[:4]}..."

    # The messages are there, masked, not dropped.
    joined = "\n".join(messages)
    assert f"HTTP GET {bearer_api.url}/single -> 200 in " in joined
    assert f"HTTP GET {key_api.url}/single?apikey=*** -> 200 in " in joined
    assert f"HTTP GET {key_api.url}/offset?limit=5&apikey=*** -> 200 in " in joined  # async
    assert f"HTTP POST {metabase.base_url}/api/session -> 200 in " in joined
    assert f"HTTP GET {metabase.base_url}/api/user/current -> 200 in " in joined
    assert f"[PASSED ] metabase_reachable: Metabase {metabase.base_url} is ok" in joined
    assert "authenticated as analyst@example.com (session)" in joined
    assert (
        f"calling {key_api.url}/single?apikey=***&page=1 with Authorization: Bearer *** as analyst "
        "/ password=***" in joined
    )
    assert "token ***, key ***, password ***" in joined
    assert "retrying https://user:***@example.com/x?token=***" in joined

    logs = tmp_path / "logs"
    application = (logs / "system" / "application.log").read_text()
    per_job = (logs / "jobs" / "secrets_probe.log").read_text()
    assert f"[secrets_probe {result.run_id[:8]} careless_step] token ***, key ***" in per_job
    assert 'STEP_SUCCESS - Finished execution of step "careless_step"' in application
    for secret in SECRETS:
        assert secret not in application + per_job


def test_log_level_info_hides_request_lines(
    instance: DagsterInstance, secrets_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    with probe_servers() as (bearer_api, key_api, metabase):
        result = run_probe(instance, bearer_api.url, key_api.url, metabase.base_url)
    assert result.success
    _, messages = event_log_text(instance, result.run_id)
    joined = "\n".join(messages)
    assert "HTTP GET" not in joined
    assert "[PASSED ] metabase_reachable" in joined  # INFO lines still arrive
    assert log_setup.get_logger().getEffectiveLevel() == logging.INFO


def test_mask_secrets_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_API_TOKEN", "shop-token-value-1")
    assert log_setup.mask_secrets("sent shop-token-value-1 upstream") == "sent *** upstream"
    assert log_setup.mask_secrets("Authorization: Basic dXNlcjpwYXNz") == "Authorization: Basic ***"
    assert log_setup.mask_secrets("X-API-KEY: mb_abcdef123") == "X-API-KEY: ***"
    assert log_setup.mask_secrets("header bearer abcdef1234") == "header bearer ***"
    assert (
        log_setup.mask_secrets("GET https://a.example/v1?api_key=zzz999&page=2 failed")
        == "GET https://a.example/v1?api_key=***&page=2 failed"
    )
    # Ordinary words stay.
    text = "check METABASE_USERNAME / METABASE_PASSWORD; 12 rows in 0.5 s"
    assert log_setup.mask_secrets(text) == text


def test_descriptive_names_are_not_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = HttpResource(
        base_url="http://x", auth_kind="api_key", api_key_name="X-Api-Key",
        api_key_location="header", secret="real-key-123456",
    )  # fmt: skip
    register_resource_secrets({"api": resource})
    monkeypatch.setenv("SHOP_API_KEY_HEADER", "X-Shop-Key")
    monkeypatch.setenv("SHOP_TOKEN_URL", "https://auth.example/oauth")
    text = "sent header X-Api-Key and X-Shop-Key to https://auth.example/oauth with real-key-123456"
    assert log_setup.mask_secrets(text) == (
        "sent header X-Api-Key and X-Shop-Key to https://auth.example/oauth with ***"
    )


def test_definitions_configure_logging() -> None:
    from dataproc_dagster.definitions import build_definitions

    build_definitions()
    assert log_setup.is_configured()
    assert (
        logging.getLogRecordFactory()(
            "dagster", logging.INFO, "x", 1, "Bearer abcdefgh12", None, None
        ).getMessage()
        == "Bearer ***"
    )


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_instance_installed_by_run_sh_keeps_log_level(
    level: str, secrets_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The settings ./run.sh installs set python_log_level to LOG_LEVEL: Dagster gives that
    level to the framework loggers at each run's start, so LOG_LEVEL=DEBUG still shows the
    request lines, and INFO keeps them out."""
    monkeypatch.setenv("DATAPROC_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("LOG_LEVEL", level)
    settings = yaml.safe_load(instance_config.render(DAGSTER_YAML.read_text(), level))
    with (
        instance_for_test(overrides=settings) as instance,
        probe_servers() as (bearer_api, key_api, metabase),
    ):
        assert instance.python_log_level == level
        result = run_probe(instance, bearer_api.url, key_api.url, metabase.base_url)
        assert result.success
        _, messages = event_log_text(instance, result.run_id)
    joined = "\n".join(messages)
    assert ("HTTP GET" in joined) is (level == "DEBUG")
    assert "[PASSED ] metabase_reachable" in joined
