"""`TenantService`: the tenant's users, roles, licences, capacity and policy, and its
F&O and Dataverse environments."""

from __future__ import annotations

import datetime as dt
from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.dataverse.provisioner import store_size
from datasources.odata.endpoint import Endpoint, is_odata
from datasources.sql.stores import redact
from datasources.sql.tables import UtcDateTime
from gateway.control import control_metadata
from gateway.kernel.errors import BadUserInput, Conflict, GatewayError, NotFound
from gateway.kernel.setup import Administrator, SetupFacts
from gateway.kernel.tenant import (
    AdminRole,
    DeploymentState,
    EnvironmentCreationPolicy,
    EnvironmentType,
    Licence,
)

tenant = Table(
    "tenant",
    control_metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("tenant_id", String(36), nullable=False),
    Column("capacity_bytes", BigInteger, nullable=False),
    Column("policy", String(20), nullable=False),
)
tenant_user = Table(
    "tenant_user",
    control_metadata,
    Column("email", String(200), primary_key=True),
    Column("name", String(200), nullable=False),
)
user_role = Table(
    "user_role",
    control_metadata,
    Column("email", ForeignKey("tenant_user.email", ondelete="CASCADE"), primary_key=True),
    Column("role", String(40), primary_key=True),
)
user_licence = Table(
    "user_licence",
    control_metadata,
    Column("email", ForeignKey("tenant_user.email", ondelete="CASCADE"), primary_key=True),
    Column("licence", String(60), primary_key=True),
)
environment = Table(
    "environment",
    control_metadata,
    Column("name", String(100), primary_key=True),
    Column("type", String(40), nullable=False),
    Column("deployment_state", String(20), nullable=False),
    Column("administrator", String(200)),
    Column("fno_url", String(1000), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
dataverse_environment = Table(
    "dataverse_environment",
    control_metadata,
    Column("name", String(100), primary_key=True),
    Column("url", String(1000), nullable=False),
    Column("reserved_bytes", BigInteger, nullable=False),
    Column("managed", Boolean, nullable=False),  # created by this gateway: it may remove it
    Column("created_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True)
class User:
    email: str
    name: str
    roles: frozenset[AdminRole]
    licences: frozenset[Licence]


@dataclass(frozen=True)
class Capacity:
    total_bytes: int
    used_bytes: int

    @property
    def available_bytes(self) -> int:
        return max(0, self.total_bytes - self.used_bytes)


@dataclass(frozen=True)
class Environment:
    name: str
    type: EnvironmentType
    deployment_state: DeploymentState
    administrator: str | None
    fno_url: str
    created_at: dt.datetime

    @property
    def display_url(self) -> str:
        return redact(self.fno_url)


@dataclass(frozen=True)
class DataverseEnvironment:
    name: str
    url: str
    reserved_bytes: int
    managed: bool
    created_at: dt.datetime

    @property
    def display_url(self) -> str:
        return redact(self.url)


@dataclass(frozen=True)
class Tenant:
    name: str
    tenant_id: str
    policy: EnvironmentCreationPolicy


def _email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 200:
        raise BadUserInput(f"{email!r} is not an email address")
    return email


class TenantService:
    def __init__(self, control: AsyncEngine) -> None:
        self._control = control

    # tenant

    async def tenant(self) -> Tenant:
        async with self._control.connect() as conn:
            row = (await conn.execute(select(tenant))).first()
        if row is None:
            raise NotFound("the tenant is not set up")
        return Tenant(row.name, row.tenant_id, EnvironmentCreationPolicy(row.policy))

    async def ensure(self, name: str, tenant_id: str, capacity_bytes: int) -> bool:
        """Create the tenant row on first start; True when it was created."""
        async with self._control.begin() as conn:
            if (await conn.execute(select(tenant.c.id))).first() is not None:
                return False
            await conn.execute(
                insert(tenant).values(
                    id=1,
                    name=name,
                    tenant_id=tenant_id,
                    capacity_bytes=capacity_bytes,
                    policy=EnvironmentCreationPolicy.EVERYONE.value,
                )
            )
        return True

    async def set_policy(self, policy: EnvironmentCreationPolicy) -> Tenant:
        async with self._control.begin() as conn:
            await conn.execute(update(tenant).values(policy=policy.value))
        return await self.tenant()

    async def set_capacity(self, total_bytes: int) -> Capacity:
        if total_bytes < 0:
            raise BadUserInput("capacity cannot be negative")
        async with self._control.begin() as conn:
            await conn.execute(update(tenant).values(capacity_bytes=total_bytes))
        return await self.capacity()

    async def capacity(self) -> Capacity:
        """Total, and used: what each Dataverse store really takes plus what it reserved."""
        async with self._control.connect() as conn:
            total = await conn.scalar(select(tenant.c.capacity_bytes)) or 0
            stores = (await conn.execute(select(dataverse_environment))).all()
        used = 0
        for store in stores:
            used += store.reserved_bytes
            with suppress(GatewayError):  # an unreachable store: the stages report it
                used += await store_size(store.url)
        return Capacity(int(total), used)

    # users

    async def users(self) -> list[User]:
        async with self._control.connect() as conn:
            people = (await conn.execute(select(tenant_user).order_by(tenant_user.c.email))).all()
            roles = (await conn.execute(select(user_role))).all()
            licences = (await conn.execute(select(user_licence))).all()
        return [
            User(
                p.email,
                p.name,
                frozenset(AdminRole(r.role) for r in roles if r.email == p.email),
                frozenset(Licence(x.licence) for x in licences if x.email == p.email),
            )
            for p in people
        ]

    async def user(self, email: str) -> User | None:
        email = email.strip().lower()
        return next((u for u in await self.users() if u.email == email), None)

    async def _user(self, email: str) -> User:
        user = await self.user(email)
        if user is None:
            raise NotFound(f"no user {email!r} in the tenant; add them with createUser")
        return user

    async def create_user(self, email: str, name: str) -> User:
        email = _email(email)
        if not name.strip():
            raise BadUserInput("a user needs a name")
        try:
            async with self._control.begin() as conn:
                await conn.execute(insert(tenant_user).values(email=email, name=name.strip()))
        except IntegrityError:
            raise Conflict(f"the tenant already has a user {email}") from None
        return await self._user(email)

    async def delete_user(self, email: str) -> None:
        user = await self._user(email)
        async with self._control.begin() as conn:
            for table in (user_role, user_licence, tenant_user):
                await conn.execute(delete(table).where(table.c.email == user.email))

    async def set_role(self, email: str, role: AdminRole, held: bool) -> User:
        user = await self._user(email)
        async with self._control.begin() as conn:
            await conn.execute(
                delete(user_role).where(user_role.c.email == user.email, user_role.c.role == role)
            )
            if held:
                await conn.execute(insert(user_role).values(email=user.email, role=role.value))
        return await self._user(email)

    async def set_licence(self, email: str, licence: Licence, held: bool) -> User:
        user = await self._user(email)
        async with self._control.begin() as conn:
            await conn.execute(
                delete(user_licence).where(
                    user_licence.c.email == user.email, user_licence.c.licence == licence
                )
            )
            if held:
                await conn.execute(
                    insert(user_licence).values(email=user.email, licence=licence.value)
                )
        return await self._user(email)

    # environments

    async def environments(self) -> list[Environment]:
        async with self._control.connect() as conn:
            rows = await conn.execute(select(environment).order_by(environment.c.name))
            return [_environment(r) for r in rows]

    async def environment(self, name: str) -> Environment:
        async with self._control.connect() as conn:
            row = (
                await conn.execute(select(environment).where(environment.c.name == name))
            ).first()
        if row is None:
            raise NotFound(f"no F&O environment named {name!r}; query environments to list them")
        return _environment(row)

    async def create_environment(
        self,
        name: str,
        type: EnvironmentType,
        fno_url: str,
        administrator: str | None,
        deployment_state: DeploymentState = DeploymentState.DEPLOYED,
    ) -> Environment:
        name = name.strip()
        if not name or len(name) > 100:
            raise BadUserInput("an environment name has 1 to 100 characters")
        _check_url(fno_url)
        try:
            async with self._control.begin() as conn:
                await conn.execute(
                    insert(environment).values(
                        name=name,
                        type=type.value,
                        deployment_state=deployment_state.value,
                        administrator=_email(administrator) if administrator else None,
                        fno_url=fno_url,
                        created_at=dt.datetime.now(dt.UTC),
                    )
                )
        except IntegrityError:
            raise Conflict(f"an environment named {name} exists already") from None
        return await self.environment(name)

    async def update_environment(
        self,
        name: str,
        *,
        deployment_state: DeploymentState | None = None,
        administrator: str | None = None,
        fno_url: str | None = None,
    ) -> Environment:
        await self.environment(name)
        values: dict[str, object] = {}
        if deployment_state is not None:
            values["deployment_state"] = deployment_state.value
        if administrator is not None:
            values["administrator"] = _email(administrator)
        if fno_url is not None:
            _check_url(fno_url)
            values["fno_url"] = fno_url
        if values:
            async with self._control.begin() as conn:
                await conn.execute(
                    update(environment).where(environment.c.name == name).values(**values)
                )
        return await self.environment(name)

    async def facts(self, name: str) -> SetupFacts:
        env = await self.environment(name)
        user = await self.user(env.administrator) if env.administrator else None
        return SetupFacts(
            environment=env.name,
            environment_type=env.type,
            deployment_state=env.deployment_state,
            administrator_email=env.administrator,
            administrator=Administrator(user.email, user.name, user.licences, user.roles)
            if user is not None
            else None,
            policy=(await self.tenant()).policy,
            available_bytes=(await self.capacity()).available_bytes,
        )

    # Dataverse environments

    async def dataverse_environments(self) -> list[DataverseEnvironment]:
        async with self._control.connect() as conn:
            rows = await conn.execute(
                select(dataverse_environment).order_by(dataverse_environment.c.name)
            )
            return [DataverseEnvironment(**r._mapping) for r in rows]

    async def dataverse_environment(self, name: str) -> DataverseEnvironment | None:
        return next((d for d in await self.dataverse_environments() if d.name == name), None)

    async def register_dataverse_environment(self, name: str, url: str) -> DataverseEnvironment:
        """Record an existing Dataverse environment (made elsewhere) so setup can link it."""
        _check_url(url)
        name = name.strip()
        if not name:
            raise BadUserInput("a Dataverse environment needs a name")
        async with self._control.begin() as conn:
            row = (
                await conn.execute(
                    select(dataverse_environment).where(dataverse_environment.c.name == name)
                )
            ).first()
            if row is not None and row.managed:
                raise Conflict(f"{name} was created by setup; it cannot be re-registered")
            await conn.execute(
                delete(dataverse_environment).where(dataverse_environment.c.name == name)
            )
            await conn.execute(
                insert(dataverse_environment).values(
                    name=name,
                    url=url,
                    reserved_bytes=0,
                    managed=False,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
        found = await self.dataverse_environment(name)
        assert found is not None
        return found

    async def add_managed_dataverse_environment(
        self, name: str, url: str, reserved_bytes: int
    ) -> None:
        """Record a Dataverse environment setup created (and so may remove)."""
        async with self._control.begin() as conn:
            await conn.execute(
                insert(dataverse_environment).values(
                    name=name,
                    url=url,
                    reserved_bytes=reserved_bytes,
                    managed=True,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )

    async def forget_dataverse_environment(self, name: str) -> None:
        """Drop the record (and so the reservation) of a removed Dataverse environment."""
        async with self._control.begin() as conn:
            await conn.execute(
                delete(dataverse_environment).where(dataverse_environment.c.name == name)
            )


def _environment(row: object) -> Environment:
    m = row._mapping  # type: ignore[attr-defined]
    return Environment(
        name=m["name"],
        type=EnvironmentType(m["type"]),
        deployment_state=DeploymentState(m["deployment_state"]),
        administrator=m["administrator"],
        fno_url=m["fno_url"],
        created_at=m["created_at"],
    )


def _check_url(url: str) -> None:
    if is_odata(url):
        Endpoint.parse(url)  # says what is wrong with it
        return
    try:
        backend = make_url(url).get_backend_name()
    except Exception:
        raise BadUserInput(
            f"{url!r} is not a store URL (sqlite:///…, postgresql://… or https://…/data/)"
        ) from None
    if backend not in ("sqlite", "postgresql"):
        raise BadUserInput(
            f"store URLs are sqlite:///…, postgresql://… or https://…/data/, not {backend}://"
        )
