"""The event log (control store): every event relayed from an outbox, numbered. The
ControlNumber is the log's own row number: it increases, with gaps allowed.

Whatever appends to the log takes the log's lock first, so events commit in
ControlNumber order: a reader that has seen number n never sees a smaller one appear
later (PostgreSQL hands out numbers before commit; SQLite's writers take turns anyway).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
from sqlalchemy import Column, Index, Integer, Select, String, Table, Text, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from datasources.sql import notify
from datasources.sql.tables import UtcDateTime
from gateway.control import control_metadata
from gateway.kernel.events import BusinessEvent, envelope
from gateway.kernel.json import dumps, loads, plain

LOG_LOCK = 0x66_6E_6F_65_76  # the advisory lock appends take in turn
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


async def append(conn: AsyncConnection, events: Sequence[dict[str, Any]]) -> None:
    """Add the events the log does not hold yet (a relay may hand one over twice)."""
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(event_log)
    await _in_turn(conn)
    await conn.execute(
        insert.on_conflict_do_nothing(index_elements=["event_id"]),
        [{k: v for k, v in e.items() if k != "id"} for e in events],
    )


async def raise_control_event(
    conn: AsyncConnection,
    event: BusinessEvent,
    legal_entity: str,
    fields: dict[str, Any],
    user: str = "",
) -> None:
    """An event of the integration itself, whose change is in the control store: it goes
    straight into the log, in the change's transaction."""
    await _in_turn(conn)
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


async def _in_turn(conn: AsyncConnection) -> None:
    """Hold the log's lock until the transaction ends (see the module's docstring)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(LOG_LOCK)))


@dataclass(frozen=True)
class EventFilter:
    """Which events a listener wants; None: all. Legal entities in upper case."""

    events: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    legal_entities: frozenset[str] | None = None
    entities: frozenset[str] | None = None

    @classmethod
    def of(
        cls,
        events: Sequence[str] | None = None,
        categories: Sequence[str] | None = None,
        legal_entities: Sequence[str] | None = None,
        entities: Sequence[str] | None = None,
    ) -> EventFilter:
        def kept(values: Sequence[str] | None) -> frozenset[str] | None:
            return frozenset(values) if values else None

        companies = [c.upper() for c in legal_entities] if legal_entities else None
        return cls(kept(events), kept(categories), kept(companies), kept(entities))

    def accepts(self, event: Logged) -> bool:
        return (
            (self.events is None or event.event in self.events)
            and (self.categories is None or event.category in self.categories)
            and (self.legal_entities is None or event.legal_entity in self.legal_entities)
            and (self.entities is None or event.entity in self.entities)
        )

    def where(self, query: Select[Any]) -> Select[Any]:
        for values, column in (
            (self.events, event_log.c.business_event),
            (self.categories, event_log.c.category),
            (self.legal_entities, event_log.c.legal_entity),
            (self.entities, event_log.c.entity),
        ):
            if values is not None:
                query = query.where(column.in_(sorted(values)))
        return query


@dataclass(frozen=True)
class Logged:
    """An event as the log holds it."""

    number: int  # its ControlNumber
    event: str
    category: str
    legal_entity: str
    entity: str | None
    payload: dict[str, Any]  # as delivered: the envelope, then its own fields

    @classmethod
    def of(cls, row: Any) -> Logged:
        event = BusinessEvent(row.business_event, "", row.category, "", (), row.major, row.minor)
        fields = loads(row.payload)
        payload = envelope(
            event,
            row.legal_entity,
            row.control_number,
            row.event_id,
            row.at,
            row.initiating_user,
            fields,
        )
        return cls(
            row.control_number,
            row.business_event,
            row.category,
            row.legal_entity,
            row.entity,
            payload,
        )

    @cached_property
    def encoded(self) -> bytes:
        """The payload as JSON, encoded once whatever the number of listeners."""
        return orjson.dumps(self.payload)


class EventLog:
    """Reads the log: what a listener asked for, after its cursor, in ControlNumber order."""

    def __init__(self, control: AsyncEngine) -> None:
        self._control = control

    async def prepare(self) -> None:
        """Have the control store tell listeners when events are logged (PostgreSQL)."""
        async with self._control.begin() as conn:
            await notify.install(conn, event_log.name)

    def listener(self, wake: Callable[[], None]) -> notify.Listener:
        """Calls `wake` when any process logs events, once started."""
        return notify.Listener(self._control, event_log.name, wake)

    async def read(
        self, after: int, limit: int, wanted: EventFilter = EventFilter()
    ) -> list[Logged]:
        query = wanted.where(select(event_log).where(event_log.c.control_number > after))
        query = query.order_by(event_log.c.control_number).limit(limit)
        async with self._control.connect() as conn:
            return [Logged.of(r) for r in await conn.execute(query)]

    async def last(self) -> int:
        """The highest ControlNumber so far (0: none)."""
        async with self._control.connect() as conn:
            found = await conn.execute(select(func.max(event_log.c.control_number)))
            return int(found.scalar() or 0)
