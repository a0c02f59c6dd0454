"""Who is calling: bearer tokens (JWT, HS256) with roles, checked on every operation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

import jwt

from gateway.kernel.errors import Unauthenticated


class Role(StrEnum):
    READER = "reader"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[Role]
    anonymous: bool = False

    def has(self, role: Role) -> bool:
        return role in self.roles or Role.ADMIN in self.roles


ANONYMOUS = Principal("anonymous", frozenset(), anonymous=True)
ANONYMOUS_READER = Principal("anonymous", frozenset({Role.READER}), anonymous=True)


class TokenAuthority:
    """Issues and checks the gateway's tokens. The secret never leaves this object."""

    issuer = "fno-gateway"

    def __init__(self, secret: str, anonymous_reads: bool) -> None:
        self._secret = secret
        self._anonymous = ANONYMOUS_READER if anonymous_reads else ANONYMOUS

    def __repr__(self) -> str:
        return "TokenAuthority(secret=<hidden>)"

    def issue(self, subject: str, roles: list[Role], ttl: dt.timedelta) -> str:
        now = dt.datetime.now(dt.UTC)
        claims = {
            "sub": subject,
            "roles": [r.value for r in roles],
            "iss": self.issuer,
            "iat": now,
            "exp": now + ttl,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            return self._anonymous
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        try:
            claims = jwt.decode(
                token.strip(),
                self._secret,
                algorithms=["HS256"],
                issuer=self.issuer,
                options={"require": ["sub", "exp", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired; ask for a new one") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        roles = frozenset(Role(r) for r in claims.get("roles", []) if r in Role._value2member_map_)
        return Principal(str(claims["sub"]), roles)
