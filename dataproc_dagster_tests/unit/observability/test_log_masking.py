"""Masking of log messages: which variables are secrets, and URLs inside brackets and quotes."""

from __future__ import annotations

import pytest

from dataproc_dagster.core import redaction as masking

REPO_PATH = "/home/analyst/projects/etl-demo"


@pytest.fixture
def shell_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables a shell sets, next to real secrets."""
    monkeypatch.setenv("PWD", REPO_PATH)
    monkeypatch.setenv("OLDPWD", "/home/analyst")
    monkeypatch.setenv("HOME", "/home/analyst")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/ssh-XXXX/agent.1234")
    monkeypatch.setenv("SHOP_API_KEY", "shop-key-0f3a9c")
    monkeypatch.setenv("WAREHOUSE_PASSWORD", "pw-horse-battery")
    monkeypatch.setenv("MYSQL_PWD", "mysql-pwd-value")
    monkeypatch.setenv("SERVICE_KEY", "/etc/service/key.pem")
    monkeypatch.setenv("BROKER_TOKEN", "https://broker.example/ping")
    monkeypatch.setenv("DB_SECRET", "postgres://etl:db-pass-9981@db.example:5432/x")


@pytest.mark.usefixtures("shell_environment")
def test_working_directories_and_paths_are_not_secrets() -> None:
    text = f"Writing file at: {REPO_PATH}/.dagster_home/storage/x (from /home/analyst)"
    assert masking.mask_secrets(text) == text
    assert not masking.is_secret_variable("PWD")
    assert not masking.is_secret_variable("OLDPWD")
    assert not masking.is_secret_variable("SSH_AUTH_SOCK")
    # A path or a URL without credentials in a secret-named variable is not a credential.
    assert masking.mask_secrets("read /etc/service/key.pem") == "read /etc/service/key.pem"
    ping = "GET https://broker.example/ping ok"
    assert masking.mask_secrets(ping) == ping


@pytest.mark.usefixtures("shell_environment")
def test_secret_variables_are_masked_by_value() -> None:
    text = "using shop-key-0f3a9c, pw-horse-battery and mysql-pwd-value"
    assert masking.mask_secrets(text) == "using ***, *** and ***"
    # Only the password of a URL with credentials is a secret value.
    assert masking.mask_secrets("password db-pass-9981 leaked") == "password *** leaked"
    for name in ("SHOP_API_KEY", "API_TOKEN", "CLIENT_SECRET", "METABASE_APIKEY", "MYSQL_PWD"):
        assert masking.is_secret_variable(name), name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[GET http://127.0.0.1:8080/page?page=3&per_page=100] HTTP 500",
            "[GET http://127.0.0.1:8080/page?page=3&per_page=100] HTTP 500",
        ),
        ("[Metabase http://mb.example:3000] is down", "[Metabase http://mb.example:3000] is down"),
        ("(see http://h.example/a?b=1).", "(see http://h.example/a?b=1)."),
        (
            "url 'http://h.example/x?token=abc123' failed",
            "url 'http://h.example/x?token=***' failed",
        ),
        (
            'url "http://h.example/x?token=abc123" failed',
            'url "http://h.example/x?token=***" failed',
        ),
        (
            "[GET http://h.example/x?api_key=zz99zz]: 401",
            "[GET http://h.example/x?api_key=***]: 401",
        ),
        ("{http://u:pa55word@h.example/x}", "{http://u:***@h.example/x}"),
        ("wiki http://w.example/A_(b) page", "wiki http://w.example/A_(b) page"),
        ("the bearer secret is configured", "the bearer secret is configured"),
        ("Authorization: Bearer abcdefghijklmnop", "Authorization: Bearer ***"),
    ],
)
def test_urls_in_brackets_quotes_and_parentheses(text: str, expected: str) -> None:
    assert masking.mask_secrets(text, secrets=()) == expected


def test_mask_url_keeps_the_query_text() -> None:
    url = "http://h.example/p?q=a%20b&sort=-id&list=1,2&token=t0k3n"
    assert masking.mask_url(url) == "http://h.example/p?q=a%20b&sort=-id&list=1,2&token=***"
