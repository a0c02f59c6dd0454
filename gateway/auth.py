"""Who is calling: bearer JWTs (HS256 with the gateway's secret, or RS256 with a
configured public key) and API keys, each naming a subject with roles and the legal
entities it may read.

API keys are random; only their SHA-256 is stored (a key has 256 bits of entropy,
so a slow hash would add nothing). A verified key is remembered for a few seconds so
a busy client does not cost a control-store lookup per request; revoking clears it
here at once, and on other replicas within that time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

import jwt
from cachetools import TTLCache
from sqlalchemy import Column, String, Table, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.sql.tables import UtcDateTime
from gateway.control import control_metadata
from gateway.kernel.errors import BadUserInput, Forbidden, NotFound, Unauthenticated

KEY_PREFIX = "fgk_"
_ID_LENGTH = 12


class Role(StrEnum):
    READER = "reader"
    WRITER = "writer"  # may also change F&O data through virtual entities
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[Role]
    companies: frozenset[str] | None = None  # legal entities it may read; None: all
    anonymous: bool = False

    def has(self, role: Role) -> bool:
        implied = {Role.READER} if Role.WRITER in self.roles else set()
        return role in self.roles or role in implied or Role.ADMIN in self.roles

    def may_read(self, company: str | None) -> bool:
        """`company` None asks for every company."""
        if self.companies is None:
            return True
        return company is not None and company.lower() in self.companies

    def check_company(self, company: str | None) -> None:
        if self.may_read(company):
            return
        allowed = ", ".join(sorted(c.upper() for c in self.companies or ()))
        if company is None:
            raise Forbidden(
                f"{self.subject} may read only {allowed}: ask for one company instead of "
                "crossCompany"
            )
        raise Forbidden(
            f"{self.subject} may not read legal entity {company.upper()}; only {allowed}"
        )


ANONYMOUS = Principal("anonymous", frozenset(), anonymous=True)
ANONYMOUS_READER = Principal("anonymous", frozenset({Role.READER}), anonymous=True)

api_key = Table(
    "api_key",
    control_metadata,
    Column("id", String(_ID_LENGTH), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("roles", String(100), nullable=False),
    Column("companies", Text),  # comma-separated; NULL: every company
    Column("description", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)


@dataclass(frozen=True)
class ApiKey:
    id: str
    subject: str
    roles: frozenset[Role]
    companies: frozenset[str] | None
    description: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _companies(companies: list[str] | None) -> frozenset[str] | None:
    if companies is None:
        return None
    cleaned = frozenset(c.strip().lower() for c in companies if c.strip())
    if any(len(c) > 4 for c in cleaned):
        raise BadUserInput("legal entities are codes of up to 4 characters, such as USMF")
    return cleaned


class Authenticator:
    """Turns an Authorization header into a principal. Secrets never leave this object."""

    issuer = "fno-gateway"

    def __init__(
        self,
        control: AsyncEngine,
        secret: str,
        anonymous_reads: bool,
        public_key: str | None = None,
        cache_seconds: float = 10.0,
    ) -> None:
        self._control = control
        self._secret = secret
        self._public_key = public_key
        self._anonymous = ANONYMOUS_READER if anonymous_reads else ANONYMOUS
        self._cache: TTLCache[str, Principal] = TTLCache(maxsize=10_000, ttl=cache_seconds)

    def __repr__(self) -> str:
        return "Authenticator(secret=<hidden>)"

    @property
    def anonymous(self) -> Principal:
        """Who a caller without credentials is."""
        return self._anonymous

    def issue(
        self,
        subject: str,
        roles: list[Role],
        ttl: dt.timedelta,
        companies: list[str] | None = None,
    ) -> str:
        """An HS256 JWT signed with the gateway's secret."""
        now = dt.datetime.now(dt.UTC)
        claims: dict[str, object] = {
            "sub": subject,
            "roles": [r.value for r in roles],
            "iss": self.issuer,
            "iat": now,
            "exp": now + ttl,
        }
        if companies is not None:
            claims["companies"] = sorted(_companies(companies) or ())
        return jwt.encode(claims, self._secret, algorithm="HS256")

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            return self._anonymous
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        if token.startswith(KEY_PREFIX):
            return await self._api_key(token)
        return self._jwt(token)

    def _jwt(self, token: str) -> Principal:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        if algorithm == "RS256" and self._public_key is not None:
            key, algorithms = self._public_key, ["RS256"]
        elif algorithm == "HS256":
            key, algorithms = self._secret, ["HS256"]
        else:
            accepted = "HS256 or RS256" if self._public_key else "HS256"
            raise Unauthenticated(
                f"tokens signed with {algorithm} are not accepted; use {accepted}"
            )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self.issuer,
                options={"require": ["sub", "exp", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired; ask for a new one") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        roles = frozenset(Role(r) for r in claims.get("roles", []) if r in Role._value2member_map_)
        companies = claims.get("companies")
        return Principal(
            str(claims["sub"]),
            roles,
            _companies([str(c) for c in companies]) if isinstance(companies, list) else None,
        )

    async def _api_key(self, token: str) -> Principal:
        digest = _digest(token)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        key_id = token[len(KEY_PREFIX) : len(KEY_PREFIX) + _ID_LENGTH]
        async with self._control.connect() as conn:
            row = (await conn.execute(select(api_key).where(api_key.c.id == key_id))).first()
        if row is None or not hmac.compare_digest(row.hash, digest):
            raise Unauthenticated("the API key is not valid")
        if row.revoked_at is not None:
            raise Unauthenticated("the API key was revoked; ask an admin for a new one")
        principal = _principal(_key(row))
        self._cache[digest] = principal
        return principal

    async def create_key(
        self,
        subject: str,
        roles: list[Role],
        companies: list[str] | None = None,
        description: str = "",
    ) -> tuple[ApiKey, str]:
        """A new API key and its secret, which is shown this once and never stored."""
        subject = subject.strip().lower()
        if not subject or len(subject) > 200:
            raise BadUserInput(
                "an API key names a subject (a user's email or a service) of 1 to 200 characters"
            )
        allowed = _companies(companies)
        key_id = secrets.token_hex(_ID_LENGTH // 2)
        token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        async with self._control.begin() as conn:
            await conn.execute(
                insert(api_key).values(
                    id=key_id,
                    hash=_digest(token),
                    subject=subject,
                    roles=",".join(sorted({r.value for r in roles})),
                    companies=None if allowed is None else ",".join(sorted(allowed)),
                    description=description[:200],
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
        return await self.key(key_id), token

    async def keys(self) -> list[ApiKey]:
        async with self._control.connect() as conn:
            rows = await conn.execute(select(api_key).order_by(api_key.c.created_at))
            return [_key(r) for r in rows]

    async def key(self, key_id: str) -> ApiKey:
        found = next((k for k in await self.keys() if k.id == key_id), None)
        if found is None:
            raise NotFound(f"no API key {key_id!r}; query apiKeys to list them")
        return found

    async def revoke_key(self, key_id: str) -> ApiKey:
        await self.key(key_id)
        async with self._control.begin() as conn:
            await conn.execute(
                update(api_key)
                .where(api_key.c.id == key_id, api_key.c.revoked_at.is_(None))
                .values(revoked_at=dt.datetime.now(dt.UTC))
            )
        self._cache.clear()
        return await self.key(key_id)


def _key(row: object) -> ApiKey:
    m = row._mapping  # type: ignore[attr-defined]
    return ApiKey(
        id=m["id"],
        subject=m["subject"],
        roles=frozenset(Role(r) for r in m["roles"].split(",") if r),
        companies=frozenset(m["companies"].split(",")) - {""}
        if m["companies"] is not None
        else None,
        description=m["description"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


def _principal(key: ApiKey) -> Principal:
    return Principal(key.subject, key.roles, key.companies)
