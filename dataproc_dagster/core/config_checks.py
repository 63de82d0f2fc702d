"""Checks of URLs and durations from settings, run config and pipeline code.

Every failure is a :class:`ConfigError` naming the option and showing the value with any
credentials masked: a password typed into a URL is never echoed.
"""

from __future__ import annotations

import math
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from dataproc_dagster.core.errors import ConfigError
from dataproc_dagster.core.redaction import mask_url

MAX_TIMEOUT_SECONDS = 86_400.0


def url_parts(value: str, *, option: str, schemes: tuple[str, ...], example: str) -> SplitResult:
    """Split ``value``, refusing an unknown scheme, a missing host or a port that is no number.

    Raises:
        ConfigError: Naming ``option`` and the value with its credentials masked.
    """
    shown = mask_url(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(
            f"{option} is not a valid URL ({_reason(exc)}; got {shown!r})",
            fix=f"set {option} to a URL such as {example}",
        ) from None
    if parts.scheme not in schemes:
        raise ConfigError(
            f"{option} must start with {' or '.join(s + '://' for s in schemes)} (got {shown!r})",
            fix=f"set {option} to a URL such as {example}",
        )
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ConfigError(
            f"{option} has no host name (got {shown!r})",
            fix=f"set {option} to a URL such as {example}",
        )
    return parts


def refuse_url_credentials(value: str, *, option: str, fix: str) -> str:
    """Return ``value`` when it holds no ``user:password@`` part.

    Raises:
        ConfigError: Showing the URL with the credentials masked.
    """
    try:
        parts = urlsplit(value)
    except ValueError:
        return value  # url_parts reports malformed URLs
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"{option} must not hold credentials (got {mask_url(value)!r}); they would be "
            "stored in run configuration and shown in the UI",
            fix=fix,
        )
    return value


def check_http_url(value: str, *, option: str, example: str, credentials_fix: str) -> SplitResult:
    """An http(s) URL with a host and no ``user:password@`` part.

    Raises:
        ConfigError: Naming ``option``, with the URL's credentials masked.
    """
    parts = url_parts(value, option=option, schemes=("http", "https"), example=example)
    refuse_url_credentials(value, option=option, fix=credentials_fix)
    return parts


def split_credentials(value: str) -> tuple[str, str | None, str | None]:
    """``value`` without its ``user:password@`` part, and the (unquoted) user and password."""
    parts = urlsplit(value)
    if parts.username is None and parts.password is None:
        return value, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return bare, user, password


def check_timeout(value: object, *, option: str, maximum: float = MAX_TIMEOUT_SECONDS) -> float:
    """Return ``value`` as seconds when it is a number above 0 and at most ``maximum``.

    Raises:
        ConfigError: Naming ``option`` and the value.
    """
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0 or seconds > maximum:
        raise ConfigError(
            f"{option} must be a number of seconds above 0 and at most {maximum:g} (got {value!r})",
            fix=f"set {option} to a duration such as 30",
        )
    return seconds


def _reason(exc: ValueError) -> str:
    text = str(exc)
    return "the port is not a number" if "port" in text.lower() else "cannot be parsed"
