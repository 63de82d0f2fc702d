"""Masking of secrets in URLs and messages."""

from __future__ import annotations

import pytest

from dataproc_dagster.core.redaction import (
    contains_secret,
    is_secret_name,
    mask_secrets,
    mask_url,
    register_secret,
    scrub,
)


def test_secret_query_parameters_are_masked() -> None:
    url = "https://api.example.com/v1/items?page=2&api_key=abc123&access_token=t0k&sort=id"
    masked = mask_url(url)
    assert "abc123" not in masked and "t0k" not in masked
    assert "api_key=***" in masked and "access_token=***" in masked
    assert "page=2" in masked and "sort=id" in masked


def test_configured_parameter_name_is_masked() -> None:
    masked = mask_url("http://h/x?sesame=open&page=1", ["sesame"])
    assert masked == "http://h/x?sesame=***&page=1"


def test_userinfo_password_is_masked() -> None:
    assert mask_url("https://bob:hunter2@h.example/x") == "https://bob:***@h.example/x"


def test_harmless_names_stay_visible() -> None:
    assert not is_secret_name("author")
    assert not is_secret_name("page")
    assert is_secret_name("X-API-Key")
    assert is_secret_name("key")


def test_scrub_replaces_every_secret_value() -> None:
    assert scrub("token s3cr3t and s3cr3t again", ["s3cr3t", ""]) == "token *** and *** again"


def test_credentials_of_a_url_without_scheme_are_masked() -> None:
    # urlsplit reads "etl" as the scheme here and would leave the password in the path.
    assert mask_url("etl:hunter22@db.example:8123") == "***@db.example:8123"
    assert mask_url("http//etl:hunter22@db.example") == "***@db.example"


def test_one_module_masks_messages_for_logs_errors_and_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_API_TOKEN", "shop-token-value-1")
    register_secret("registered-secret-9")
    text = "GET https://a.example/v1?api_key=zz99 with shop-token-value-1, registered-secret-9"
    assert mask_secrets(text) == "GET https://a.example/v1?api_key=*** with ***, ***"
    assert contains_secret(text) and not contains_secret("12 rows in 0.5 s")
