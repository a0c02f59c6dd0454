"""The error tree. Each error carries the `extensions.code` a GraphQL client sees.

    GatewayError
    ├── BadUserInput        BAD_USER_INPUT      the request is wrong; the message says how
    ├── Unauthenticated     UNAUTHENTICATED     no or invalid credentials
    ├── Forbidden           FORBIDDEN           authenticated, but the role lacks the right
    ├── NotFound            NOT_FOUND           the named thing does not exist
    ├── Conflict            CONFLICT            the row changed under the caller
    ├── CatalogError        CATALOG_INVALID     entity metadata that cannot be exposed
    ├── PrerequisiteFailed  PREREQUISITE_FAILED the environment is not ready; the message lists why
    ├── MapInvalid          MAP_INVALID         a dual-write map that cannot run; each problem coded
    ├── UpstreamFailed      UPSTREAM_FAILED     a store failed; the message is the store's
    └── LimitExceeded       LIMIT_EXCEEDED      past a limit; the message and `limit` name it

Anything else raised while serving a request is an internal error: masked for the
client and logged with an id.
"""

from __future__ import annotations


class GatewayError(Exception):
    """An error whose message is meant for the person who sent the request."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def extensions(self) -> dict[str, object]:
        """What graphql-core puts in `extensions` when a resolver raises this error."""
        return {"code": self.code, **self.details}


class BadUserInput(GatewayError):
    code = "BAD_USER_INPUT"


class Unauthenticated(GatewayError):
    code = "UNAUTHENTICATED"


class Forbidden(GatewayError):
    code = "FORBIDDEN"


class NotFound(GatewayError):
    code = "NOT_FOUND"


class Conflict(GatewayError):
    code = "CONFLICT"


class CatalogError(GatewayError):
    code = "CATALOG_INVALID"


class PrerequisiteFailed(GatewayError):
    code = "PREREQUISITE_FAILED"


class MapInvalid(GatewayError):
    code = "MAP_INVALID"


class UpstreamFailed(GatewayError):
    code = "UPSTREAM_FAILED"


class LimitExceeded(GatewayError):
    """A request past one of the limits that keep the gateway up for everyone;
    `extensions.limit` names the setting."""

    code = "LIMIT_EXCEEDED"

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message, limit=limit)
