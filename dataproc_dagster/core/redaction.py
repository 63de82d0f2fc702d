"""Keep secrets out of URLs, messages, logs and metadata: the one redaction module.

Every place that shows text which may hold a credential uses this module: the HTTP and
Metabase clients (URLs and error bodies), the log record masking, the step failures and the
configuration errors.

- :func:`mask_url` masks the credentials of one URL (user info, secret query parameters).
- :func:`scrub` replaces known secret values in a text.
- :func:`mask_secrets` masks a free text: registered and environment secrets, URLs inside it,
  ``Bearer`` tokens and ``name: value`` credential pairs.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"
MIN_SECRET_LENGTH = 6

# Query parameter names that carry credentials in common APIs; compared case-insensitively
# and by substring, so ``x_api_key`` and ``AccessToken`` are masked too.
_SECRET_WORDS = (
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "apikey",
    "api_key",
    "api-key",
)
_SECRET_NAMES = {
    "key",
    "auth",
    "sig",
    "access_key",
    "client_secret",
    "pass",
    "pwd",
    "authorization",
}
# Names that look secret but describe one (``api_key_location=header``, ``TOKEN_URL``).
_NOT_SECRET_SUFFIXES = (
    "_name", "_location", "_header", "_param", "_kind", "_type", "_file", "_path", "_dir",
    "_url", "_timeout", "_ttl", "_lifetime",
)  # fmt: skip

# A bearer token, not a word: "the bearer secret" stays readable.
_BEARER = re.compile(r"(?i)\b(bearer)\s+(?![A-Za-z]+\b)[A-Za-z0-9._~+/=-]{6,}")
# ``name: value`` / ``name=value`` pairs of credential headers and settings, with an optional
# auth scheme (``Authorization: Basic dXNlcjpwYXNz``).
_HEADER = re.compile(
    r"(?i)\b(x-api-key|x-metabase-session|authorization|api[_-]?key|apikey|password|passwd"
    r"|secret|token)(\s*[:=]\s*)(['\"]?)((?:bearer|basic|token)\s+)?"
    r"(?!(?:bearer|basic|token)\b)(?!\*\*\*)[^\s'\",;&)]{4,}"
)
_URL = re.compile(r"https?://[^\s'\"<>`]+")
# Characters that end a sentence or close a bracket around a URL rather than belong to it.
_URL_TRAILERS = ".,;:!?"
_CLOSERS = {")": "(", "]": "[", "}": "{"}
# Environment variables whose value is a credential: the name ends in one of these words
# (``SHOP_API_TOKEN``, ``CLICKHOUSE_PASSWORD``, ``MYSQL_PWD``). ``PWD`` and ``OLDPWD`` are the
# shell's working directories, never secrets.
_SECRET_VARIABLE = re.compile(
    r"(?:.*_)?(?:PASSWORD|PASSWD|PASS|TOKEN|SECRET|API_?KEY|KEY|CREDENTIALS?|SIGNATURE)"
    r"|.+_PWD"
)

_lock = threading.Lock()
_registered: set[str] = set()


def is_secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    """True when a parameter or header name looks like it carries a credential."""
    lowered = name.lower()
    if lowered in _SECRET_NAMES or lowered in {e.lower() for e in extra}:
        return True
    return any(word in lowered for word in _SECRET_WORDS)


def is_secret_key(name: str) -> bool:
    """True for a variable or field name that holds a credential (not one describing it)."""
    return is_secret_name(name) and not name.lower().endswith(_NOT_SECRET_SUFFIXES)


def is_secret_variable(name: str) -> bool:
    """True for an environment variable whose name says it holds a credential."""
    return _SECRET_VARIABLE.fullmatch(name.upper()) is not None


def mask_url(url: object, secret_params: Iterable[str] = ()) -> str:
    """Return ``url`` with credentials in the user-info and secret query parameters masked.

    A malformed URL is masked too: a ``user:password@`` part before the host is cut to
    ``***@``, and a URL that cannot be split at all becomes ``***``.

    Args:
        url: Any URL (or a value that should have been one, for error messages).
        secret_params: Extra query parameter names to mask (e.g. an API key's parameter name).
    """
    text = str(url)
    if "@" in text and "://" not in text.split("@", 1)[0]:
        # No scheme before the "@" (``user:pw@host``): urlsplit would read "user" as the
        # scheme and leave the password in the path. Keep only what follows the "@".
        scheme = text.split("://", 1)[0] + "://" if "://" in text else ""
        return scheme + f"{MASK}@" + text.rsplit("@", 1)[1]
    try:
        parts = urlsplit(text)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        extra = list(secret_params)
        # Only secret values are replaced: the rest of the query keeps its original text, so
        # the URL a user reads in a log is the URL that was requested.
        fields = []
        for field in query.split("&"):
            name, sep, _ = field.partition("=")
            secret = sep and is_secret_name(unquote_plus(name), extra)
            fields.append(f"{name}={MASK}" if secret else field)
        query = "&".join(fields)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value in ``text`` with ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every log record and message from now on (shorter than 6: ignored)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _registered.add(value)


def secret_values_of(value: str) -> list[str]:
    """The parts of a secret variable's value to mask: the value, or a URL's password only.

    A path or a URL without credentials is not masked: hiding it would hide every file name
    and address under it, and neither is a credential.
    """
    value = value.strip()
    if "://" in value:
        try:
            password = urlsplit(value).password
        except ValueError:
            return [value]
        return [password] if password and len(password) >= MIN_SECRET_LENGTH else []
    if value.startswith(("/", "~/", "./", "../")):
        return []
    return [value] if len(value) >= MIN_SECRET_LENGTH else []


def known_secrets() -> list[str]:
    """Secret values to mask: registered ones and the values of secret-named variables.

    The environment is read on every call, so a variable set after start-up is masked too.
    """
    with _lock:
        values = set(_registered)
    for name, value in os.environ.items():
        if is_secret_variable(name):
            values.update(secret_values_of(value))
    return sorted(values, key=len, reverse=True)


def mask_secrets(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with secret values, bearer tokens, credential headers and URL secrets masked.

    Args:
        text: Any message.
        secrets: Values to mask; default :func:`known_secrets`.
    """
    text = scrub(text, known_secrets() if secrets is None else secrets)
    if "://" in text:
        text = _URL.sub(_mask_url_match, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _HEADER.sub(lambda m: f"{m[1]}{m[2]}{m[3]}{m[4] or ''}{MASK}", text)


def contains_secret(text: str) -> bool:
    """True when :func:`mask_secrets` would change ``text``."""
    return mask_secrets(text) != text


def _mask_url_match(match: re.Match[str]) -> str:
    """Mask one URL found in a message, leaving the brackets and punctuation around it."""
    url = match.group(0)
    end = len(url)
    while end > 0:
        last = url[end - 1]
        opener = _CLOSERS.get(last)
        if last in _URL_TRAILERS or (
            opener is not None and url.count(opener, 0, end) < url.count(last, 0, end)
        ):
            end -= 1
            continue
        break
    return mask_url(url[:end]) + url[end:]
