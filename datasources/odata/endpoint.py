"""An OData store URL: the service root, and the credentials it names by reference.

    https://contoso.operations.dynamics.com/data/?tenant=<tenant id>
        &client_id=<application id>&client_secret=env:FNO_CLIENT_SECRET

The secret is never in the URL: `env:NAME` reads an environment variable, `file:PATH`
a file (a mounted secret), each time a token is fetched, so a rotated secret is used
without a restart. The URL itself can then be shown and logged as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from gateway.kernel.errors import BadUserInput

ENTRA = "https://login.microsoftonline.com"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_KNOWN = {"tenant", "client_id", "client_secret", "authority", "scope", "dialect"}


class Dialect(StrEnum):
    """What a service's `$filter` understands. F&O's `/data` has no `in`, matches text by
    `*` wildcards, compares enums only by qualified literal and expands one level; the
    standard dialect (Dataverse, other OData v4 services) has the functions."""

    FNO = "fno"
    STANDARD = "standard"


def is_odata(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


@dataclass(frozen=True)
class Endpoint:
    root: str  # the service root, ending in "/"
    dialect: Dialect
    tenant: str | None = None
    client_id: str | None = None
    client_secret: str | None = None  # a reference: env:NAME or file:PATH
    authority: str = ENTRA
    scope: str = ""

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadUserInput(f"{url} is not an OData service root (https://host/data/)")
        _secure(url, "an OData store")
        if parts.username or parts.password:
            raise BadUserInput("an OData store URL names its credentials by reference only")
        options = dict(parse_qsl(parts.query))
        unknown = set(options) - _KNOWN
        if unknown:
            raise BadUserInput(
                f"unknown OData store URL parameters: {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(_KNOWN))})"
            )
        if "authority" in options:
            _secure(options["authority"], "the token authority")
        secret = options.get("client_secret")
        if secret is not None and not secret.startswith(("env:", "file:")):
            raise BadUserInput(
                "client_secret names where the secret is (env:NAME or file:PATH), "
                "never the secret itself"
            )
        credentials = [options.get(k) for k in ("tenant", "client_id", "client_secret")]
        if any(credentials) and not all(credentials):
            raise BadUserInput("an OData store needs tenant, client_id and client_secret together")
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        root = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        dialect = options.get("dialect") or (
            Dialect.STANDARD if "/api/data/" in path else Dialect.FNO
        )
        if dialect not in set(Dialect):
            raise BadUserInput(f"dialect is one of {', '.join(Dialect)}")
        return cls(
            root=root,
            dialect=Dialect(dialect),
            tenant=options.get("tenant"),
            client_id=options.get("client_id"),
            client_secret=secret,
            authority=options.get("authority", ENTRA).rstrip("/"),
            scope=options.get("scope", f"{parts.scheme}://{parts.netloc}/.default"),
        )

    @property
    def token_url(self) -> str | None:
        if self.tenant is None:
            return None
        return f"{self.authority}/{self.tenant}/oauth2/v2.0/token"

    def secret(self) -> str:
        """The client secret, read now from where the URL says it is."""
        reference = self.client_secret or ""
        kind, _, where = reference.partition(":")
        if kind == "env":
            value = os.environ.get(where)
            if not value:
                raise BadUserInput(f"the environment variable {where} holds no client secret")
            return value
        try:
            return Path(where).read_text().strip()
        except OSError as exc:
            raise BadUserInput(f"the client secret file {where} cannot be read: {exc}") from None


def _secure(url: str, what: str) -> None:
    """Tokens and secrets cross the network only encrypted; plain http is for loopback."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        raise BadUserInput(
            f"{what} is reached over https (credentials would cross the network in the "
            "clear); http is for loopback addresses only"
        )
