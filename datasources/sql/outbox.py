"""The event outbox of a store: events a change raised, written in the change's own
transaction, so that an event exists if and only if its change committed. The relay
moves them to the control store's event log, which numbers and delivers them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    any_,
    cast,
    delete,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from datasources.sql import notify

_metadata = MetaData()
outbox = Table(
    "fno_event_outbox",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),  # the EventId, a UUID
    Column("business_event", String(200), nullable=False),
    Column("major", Integer, nullable=False),
    Column("minor", Integer, nullable=False),
    Column("category", String(100), nullable=False),
    Column("legal_entity", String(10), nullable=False),
    Column("entity", String(200)),  # a data event's entity
    Column("payload", Text, nullable=False),  # the event's own fields, as JSON
    Column("initiating_user", String(320), nullable=False),
    Column("at", DateTime, nullable=False),  # UTC
)


async def ensure(conn: AsyncConnection) -> None:
    await conn.run_sync(_metadata.create_all)
    await notify.install(conn, outbox.name)


async def add(conn: AsyncConnection, events: Sequence[Mapping[str, Any]]) -> None:
    if events:
        await conn.execute(outbox.insert(), [dict(e) for e in events])


async def depth(conn: AsyncConnection) -> int:
    """Events waiting."""
    return int(await conn.scalar(select(func.count()).select_from(outbox)) or 0)


async def take(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """The oldest events waiting, oldest first."""
    rows = await conn.execute(select(outbox).order_by(outbox.c.id).limit(limit))
    return [dict(r._mapping) for r in rows]


async def forget(conn: AsyncConnection, ids: Sequence[int]) -> None:
    if conn.dialect.name == "postgresql":  # one statement, whatever the number of ids
        await conn.execute(
            delete(outbox).where(outbox.c.id == any_(cast(list(ids), ARRAY(Integer))))
        )
    else:
        await conn.execute(delete(outbox).where(outbox.c.id.in_(list(ids))))


def utc(stamp: dt.datetime) -> dt.datetime:
    """As the outbox stores times: UTC without a zone."""
    return stamp.astimezone(dt.UTC).replace(tzinfo=None)
