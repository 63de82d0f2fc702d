"""Keep secrets out of URLs, messages, logs and metadata."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"

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


def is_secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    """True when a parameter or header name looks like it carries a credential."""
    lowered = name.lower()
    if lowered in _SECRET_NAMES or lowered in {e.lower() for e in extra}:
        return True
    return any(word in lowered for word in _SECRET_WORDS)


def mask_url(url: str, secret_params: Iterable[str] = ()) -> str:
    """Return ``url`` with credentials in the user-info and secret query parameters masked.

    Args:
        url: Any URL.
        secret_params: Extra query parameter names to mask (e.g. an API key's parameter name).
    """
    try:
        parts = urlsplit(url)
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
