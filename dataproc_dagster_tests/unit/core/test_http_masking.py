"""Masking of secrets in URLs and messages."""

from __future__ import annotations

from dataproc_dagster.core.redaction import is_secret_name, mask_url, scrub


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
