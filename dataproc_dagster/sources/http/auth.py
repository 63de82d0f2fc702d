"""Authentication kinds of the HTTP source; secrets are read from the environment when used."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from enum import StrEnum

from dataproc_dagster.core.choices import parse_choice
from dataproc_dagster.core.errors import ConfigError


class AuthKind(StrEnum):
    """How requests authenticate."""

    NONE = "none"
    BEARER = "bearer"
    BASIC = "basic"
    API_KEY = "api_key"


class ApiKeyLocation(StrEnum):
    """Where an API key travels."""

    HEADER = "header"
    QUERY = "query"


@dataclass(frozen=True)
class HttpAuth:
    """How requests authenticate. Build it with one of the helpers below.

    Only the *names* of environment variables are kept here, never the secret itself, so
    the object can sit in definitions, run config and the UI without leaking anything.

    Attributes:
        kind: ``none``, ``bearer``, ``basic`` or ``api_key``.
        secret_env: Environment variable holding the token, password or API key.
        username: User name for ``basic``.
        name: Header or query parameter carrying the API key (``api_key``).
        location: ``header`` or ``query`` (``api_key``).
    """

    kind: AuthKind = AuthKind.NONE
    secret_env: str | None = None
    username: str | None = None
    name: str | None = None
    location: ApiKeyLocation = ApiKeyLocation.HEADER

    def __post_init__(self) -> None:
        # The strings of run config and user code become the enums here.
        where = "HTTP extractor auth"
        kind = parse_choice(AuthKind, self.kind, what="auth kind", source=where)
        location = parse_choice(
            ApiKeyLocation, self.location, what="api_key location", source=where
        )
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "location", location)
        if self.kind == AuthKind.BASIC and not self.username:
            raise ConfigError(
                "basic auth needs a username",
                source="HTTP extractor auth",
                fix="set username (the password comes from secret_env)",
            )
        if self.kind == AuthKind.API_KEY and not self.name:
            raise ConfigError(
                "api_key auth needs the header or query parameter name",
                source=where,
                fix="set name, e.g. name='X-API-Key' (header) or name='api_key' (query)",
            )

    def describe(self) -> str:
        """The auth kind and where the secret comes from, without the secret."""
        if self.kind == AuthKind.NONE:
            return "no auth"
        origin = f"${self.secret_env}" if self.secret_env else "the http resource"
        if self.kind == AuthKind.BASIC:
            return f"basic auth as {self.username} (password from {origin})"
        if self.kind == AuthKind.API_KEY:
            return f"API key in {self.location} {self.name} (from {origin})"
        return f"bearer token (from {origin})"

    def read_secret(self, *, pipeline: str | None = None, source: str | None = None) -> str:
        """The secret from the environment.

        Raises:
            ConfigError: When the variable is unset or empty (the message names it).
        """
        if self.kind == AuthKind.NONE:
            return ""
        if not self.secret_env:
            raise ConfigError(
                f"auth kind '{self.kind}' needs the name of the environment variable holding "
                "the secret",
                pipeline=pipeline,
                source=source,
                fix="set secret_env, e.g. secret_env='MY_API_TOKEN'",
            )
        value = os.environ.get(self.secret_env, "")
        if not value:
            raise ConfigError(
                f"environment variable {self.secret_env} (the {self.kind} secret) is not set",
                pipeline=pipeline,
                source=source,
                fix=f"export {self.secret_env}=... in the environment of the Dagster code "
                "location, or add it to .env; a running webserver sees a new variable only after "
                "a code-location reload (UI: Deployment, Reload)",
            )
        return value

    def apply(self, secret: str, headers: dict[str, str], params: dict[str, str]) -> None:
        """Add the credential to request ``headers`` or ``params`` in place."""
        if self.kind == AuthKind.BEARER:
            headers["Authorization"] = f"Bearer {secret}"
        elif self.kind == AuthKind.BASIC:
            raw = f"{self.username}:{secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        elif self.kind == AuthKind.API_KEY:
            assert self.name is not None
            if self.location == ApiKeyLocation.HEADER:
                headers[self.name] = secret
            else:
                params[self.name] = secret

    def secret_params(self) -> tuple[str, ...]:
        """Query parameter names that carry the secret (to mask them in URLs)."""
        if self.kind == AuthKind.API_KEY and self.location == ApiKeyLocation.QUERY and self.name:
            return (self.name,)
        return ()


def bearer(secret_env: str) -> HttpAuth:
    """Bearer token auth; the token comes from environment variable ``secret_env``."""
    return HttpAuth(kind=AuthKind.BEARER, secret_env=secret_env)


def basic(username: str, password_env: str) -> HttpAuth:
    """HTTP basic auth; the password comes from environment variable ``password_env``."""
    return HttpAuth(kind=AuthKind.BASIC, username=username, secret_env=password_env)


def api_key(
    name: str, secret_env: str, *, location: ApiKeyLocation | str = ApiKeyLocation.HEADER
) -> HttpAuth:
    """An API key in header (or query parameter) ``name``, read from env var ``secret_env``."""
    where = parse_choice(
        ApiKeyLocation, location, what="api_key location", source="HTTP extractor auth"
    )
    return HttpAuth(kind=AuthKind.API_KEY, name=name, secret_env=secret_env, location=where)


NO_AUTH = HttpAuth()
