"""The event log (control store): every event relayed from an outbox, numbered. The
ControlNumber is the log's own row number: it increases, with gaps allowed."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from datasources.sql.tables import UtcDateTime
from gateway.control import control_metadata
from gateway.kernel.events import BusinessEvent, envelope
from gateway.kernel.json import dumps, loads, plain

event_log = Table(
    "business_event_log",
    control_metadata,
    Column("control_number", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("business_event", String(200), nullable=False),
    Column("major", Integer, nullable=False),
    Column("minor", Integer, nullable=False),
    Column("category", String(100), nullable=False),
    Column("legal_entity", String(10), nullable=False),
    Column("entity", String(200)),
    Column("payload", Text, nullable=False),
    Column("initiating_user", String(320), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_business_event_log_event", "business_event", "control_number"),
)


async def append(conn: AsyncConnection, events: Sequence[dict[str, Any]]) -> int:
    """Add the events the log does not hold yet (a relay may hand one over twice)."""
    ids = [e["event_id"] for e in events]
    held = set(
        (await conn.execute(select(event_log.c.event_id).where(event_log.c.event_id.in_(ids))))
        .scalars()
        .all()
    )
    fresh = [{k: v for k, v in e.items() if k != "id"} for e in events if e["event_id"] not in held]
    if fresh:
        await conn.execute(event_log.insert(), fresh)
    return len(fresh)


async def raise_control_event(
    conn: AsyncConnection,
    event: BusinessEvent,
    legal_entity: str,
    fields: dict[str, Any],
    user: str = "",
) -> None:
    """An event of the integration itself, whose change is in the control store: it goes
    straight into the log, in the change's transaction."""
    await conn.execute(
        event_log.insert().values(
            event_id=str(uuid.uuid4()),
            business_event=event.id,
            major=event.major,
            minor=event.minor,
            category=event.category,
            legal_entity=legal_entity.upper(),
            entity=None,
            payload=dumps(plain(fields)),
            initiating_user=user,
            at=dt.datetime.now(dt.UTC),
        )
    )


def payload(row: Any) -> dict[str, Any]:
    """An event as delivered: the contract's envelope, then its own fields."""
    event = BusinessEvent(row.business_event, "", row.category, "", (), row.major, row.minor)
    fields = loads(row.payload)
    return envelope(
        event,
        row.legal_entity,
        row.control_number,
        row.event_id,
        row.at,
        row.initiating_user,
        fields,
    )


class EventLog:
    """Reads the log: what a listener asked for, after its cursor, in ControlNumber order."""

    def __init__(self, control: AsyncEngine) -> None:
        self._control = control

    async def read(
        self,
        after: int,
        limit: int,
        events: Sequence[str] | None = None,
        categories: Sequence[str] | None = None,
        legal_entities: Sequence[str] | None = None,
        entities: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        query = select(event_log).where(event_log.c.control_number > after)
        if events:
            query = query.where(event_log.c.business_event.in_(events))
        if categories:
            query = query.where(event_log.c.category.in_(categories))
        if legal_entities:
            wanted = [c.upper() for c in legal_entities]
            query = query.where(event_log.c.legal_entity.in_(wanted))
        if entities:
            query = query.where(event_log.c.entity.in_(entities))
        query = query.order_by(event_log.c.control_number).limit(limit)
        async with self._control.connect() as conn:
            return [payload(r) for r in await conn.execute(query)]
