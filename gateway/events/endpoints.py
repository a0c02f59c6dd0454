"""Endpoints and activations: where each business event goes, as admins set it.

An activation routes one event of one legal entity (blank: all) to one endpoint;
deactivating it keeps it, with who did it and when. An endpoint starts at the end of
the event log: it receives what is logged after it exists.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.events.log import EventLog
from gateway.events.senders import Brokers
from gateway.events.tables import activation, delivery, endpoint, error
from gateway.kernel.errors import BadUserInput, Conflict, NotFound
from gateway.kernel.events import raised_by


class EndpointKind(enum.Enum):
    WEBHOOK = "WEBHOOK"
    BROKER = "BROKER"


@dataclass(frozen=True)
class Endpoint:
    name: str
    kind: EndpointKind
    url: str
    subject: str | None
    secret: str | None
    tries: int
    wait_seconds: int
    position: int
    created_at: dt.datetime

    @classmethod
    def of(cls, row: Any) -> Endpoint:
        return cls(
            row.name,
            EndpointKind(row.kind),
            row.url,
            row.subject,
            row.secret,
            row.tries,
            row.wait_seconds,
            row.position,
            row.created_at,
        )


@dataclass(frozen=True)
class Activation:
    id: int
    business_event: str
    legal_entity: str
    endpoint: str
    active: bool
    activated_at: dt.datetime
    activated_by: str
    deactivated_at: dt.datetime | None
    deactivated_by: str | None

    @classmethod
    def of(cls, row: Any) -> Activation:
        return cls(*(getattr(row, c.name) for c in activation.columns))

    def routes(self, business_event: str, legal_entity: str) -> bool:
        return self.business_event == business_event and self.legal_entity in ("", legal_entity)


def check_url(kind: EndpointKind, url: str) -> None:
    """Webhooks over HTTPS (plain HTTP only to this machine); brokers as nats:// URLs."""
    parts = urlsplit(url)
    if kind is EndpointKind.BROKER:
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise BadUserInput(f"url: {url!r} is not a NATS server URL (nats://host:4222)")
        return
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BadUserInput(f"url: {url!r} is not an HTTPS URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise BadUserInput(
            f"url: {url!r} is plain HTTP; webhooks carry business data, use https:// "
            "(plain http is accepted only for this machine)"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EndpointService:
    def __init__(
        self, control: AsyncEngine, log: EventLog, brokers: Brokers, max_endpoints: int
    ) -> None:
        self._control = control
        self._log = log
        self._brokers = brokers
        self._max_endpoints = max_endpoints
        self.changed: Callable[[], None] = lambda: None  # wakes the dispatcher

    # endpoints

    async def endpoints(self) -> list[Endpoint]:
        async with self._control.connect() as conn:
            rows = await conn.execute(select(endpoint).order_by(endpoint.c.name))
            return [Endpoint.of(r) for r in rows]

    async def endpoint(self, name: str) -> Endpoint:
        async with self._control.connect() as conn:
            row = (await conn.execute(select(endpoint).where(endpoint.c.name == name))).first()
        if row is None:
            raise NotFound(f"no business event endpoint is named {name!r}")
        return Endpoint.of(row)

    async def create(
        self,
        actor: str,
        name: str,
        kind: EndpointKind,
        url: str,
        subject: str | None,
        tries: int,
        wait_seconds: int,
    ) -> tuple[Endpoint, str | None]:
        """The endpoint, and (webhooks) the secret that signs its requests, shown once."""
        problems = []
        if not name.strip() or len(name) > 100:
            problems.append("name: 1 to 100 characters")
        if not 1 <= tries <= 20:
            problems.append("tries: between 1 and 20")
        if not 0 <= wait_seconds <= 3600:
            problems.append("waitSeconds: between 0 and 3600")
        if kind is EndpointKind.BROKER and not subject:
            problems.append("subject: a broker endpoint publishes to a subject")
        if problems:
            raise BadUserInput("; ".join(problems))
        check_url(kind, url)
        if kind is EndpointKind.BROKER:
            assert subject is not None
            await self._brokers.ensure_stream(url, subject)
        secret = f"fes_{secrets.token_urlsafe(32)}" if kind is EndpointKind.WEBHOOK else None
        async with self._control.begin() as conn:
            taken = await conn.execute(select(endpoint.c.name).where(endpoint.c.name == name))
            if taken.first() is not None:
                raise Conflict(f"a business event endpoint is already named {name!r}")
            await conn.execute(
                endpoint.insert().values(
                    name=name,
                    kind=kind.value,
                    url=url,
                    subject=subject,
                    secret=secret,
                    tries=tries,
                    wait_seconds=wait_seconds,
                    position=await self._log.last(),
                    created_at=dt.datetime.now(dt.UTC),
                    created_by=actor,
                )
            )
        return await self.endpoint(name), secret

    async def delete(self, name: str) -> None:
        """An endpoint goes only once nothing routes to it; its logs stay."""
        await self.endpoint(name)
        async with self._control.begin() as conn:
            active = await conn.execute(
                select(func.count())
                .select_from(activation)
                .where(activation.c.endpoint == name, activation.c.active.is_(True))
            )
            if active.scalar_one():
                raise Conflict(f"events are still activated for {name!r}: deactivate them first")
            await conn.execute(endpoint.delete().where(endpoint.c.name == name))

    async def advance(self, name: str, old: int, new: int) -> bool:
        """Move an endpoint past events it has handled; False if another replica did."""
        async with self._control.begin() as conn:
            moved = await conn.execute(
                update(endpoint)
                .where(endpoint.c.name == name, endpoint.c.position == old)
                .values(position=new)
            )
            return bool(moved.rowcount)

    # activations

    async def activations(self, include_inactive: bool = False) -> list[Activation]:
        query = select(activation).order_by(activation.c.id)
        if not include_inactive:
            query = query.where(activation.c.active.is_(True))
        async with self._control.connect() as conn:
            return [Activation.of(r) for r in await conn.execute(query)]

    async def activate(
        self,
        actor: str,
        business_event: str,
        legal_entity: str,
        endpoint_name: str,
        known: Callable[[str], bool],
        companies: Sequence[str],
    ) -> Activation:
        company = legal_entity.strip().upper()
        if not known(business_event):
            raise NotFound(
                f"{business_event!r} is not in the business event catalog "
                "(businessEventCatalog lists them)"
            )
        if company and company not in {c.upper() for c in companies}:
            raise BadUserInput(f"legalEntity: F&O has no legal entity {legal_entity!r}")
        await self.endpoint(endpoint_name)
        async with self._control.begin() as conn:
            current = [
                Activation.of(r)
                for r in await conn.execute(
                    select(activation).where(
                        activation.c.business_event == business_event,
                        activation.c.active.is_(True),
                    )
                )
            ]
            for a in current:
                if a.endpoint == endpoint_name and a.legal_entity == company:
                    raise Conflict(
                        f"{business_event} is already activated for "
                        f"{company or 'every legal entity'} on {endpoint_name!r} (id {a.id})"
                    )
            endpoints = {a.endpoint for a in current} | {endpoint_name}
            if len(endpoints) > self._max_endpoints:
                raise Conflict(
                    f"{business_event} already goes to {len(endpoints) - 1} endpoints, the "
                    f"most allowed (GATEWAY_EVENT_ENDPOINTS_PER_EVENT={self._max_endpoints})"
                )
            added = await conn.execute(
                activation.insert()
                .returning(activation.c.id)
                .values(
                    business_event=business_event,
                    legal_entity=company,
                    endpoint=endpoint_name,
                    active=True,
                    activated_at=dt.datetime.now(dt.UTC),
                    activated_by=actor,
                )
            )
            new_id = added.scalar_one()
            row = (await conn.execute(select(activation).where(activation.c.id == new_id))).one()
        self.changed()
        return Activation.of(row)

    async def deactivate(self, actor: str, activation_id: int) -> Activation:
        async with self._control.begin() as conn:
            row = (
                await conn.execute(select(activation).where(activation.c.id == activation_id))
            ).first()
            if row is None:
                raise NotFound(f"no activation has id {activation_id}")
            if not row.active:
                raise Conflict(f"activation {activation_id} was deactivated already")
            await conn.execute(
                update(activation)
                .where(activation.c.id == activation_id)
                .values(active=False, deactivated_at=dt.datetime.now(dt.UTC), deactivated_by=actor)
            )
            row = (
                await conn.execute(select(activation).where(activation.c.id == activation_id))
            ).one()
        return Activation.of(row)

    async def raising_entities(self) -> set[str]:
        """The entities whose changes raise an activated event: rows written straight
        into their tables must be tracked, or their events would be missed."""
        async with self._control.connect() as conn:
            active = await conn.execute(
                select(activation.c.business_event).where(activation.c.active.is_(True)).distinct()
            )
            names = {raised_by(event) for event in active.scalars()}
        return {n for n in names if n is not None}

    # what happened

    async def deliveries(self, name: str, after: int, first: int) -> list[Any]:
        await self.endpoint(name)
        async with self._control.connect() as conn:
            rows = await conn.execute(
                select(delivery)
                .where(delivery.c.endpoint == name, delivery.c.id > after)
                .order_by(delivery.c.id)
                .limit(first)
            )
            return list(rows)

    async def errors(self, name: str | None, pending: bool) -> list[Any]:
        query = select(error).order_by(error.c.id)
        if name is not None:
            query = query.where(error.c.endpoint == name)
        if pending:
            query = query.where(error.c.resent_at.is_(None))
        async with self._control.connect() as conn:
            return list(await conn.execute(query))

    async def error(self, error_id: int) -> Any:
        async with self._control.connect() as conn:
            row = (await conn.execute(select(error).where(error.c.id == error_id))).first()
        if row is None:
            raise NotFound(f"no business event error has id {error_id}")
        return row
