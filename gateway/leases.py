"""Named leases in the control store: work that one replica at a time must do (an
endpoint's deliveries, which keep the log's order; tracking a store's direct writes).

A replica holds a lease by renewing it before it runs out; one that dies stops
renewing, and once the lease has run out any replica sharing the control store takes
it. A replica that stops gives its leases back, so another goes on at once. Each
holder is named by host and process, so an operator (or a test) can tell which
replica holds what.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import cache

from sqlalchemy import Column, String, Table, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.sql.tables import UtcDateTime
from gateway.control import control_metadata

log = logging.getLogger("gateway.leases")

lease = Table(
    "lease",
    control_metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)


@cache
def holder_name() -> str:
    """This process, as leases and jobs name their holder: host, process id, and a
    random part (a restarted process may get its predecessor's id)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """The leases this replica holds, each renewed when used past half its term."""

    RETRY = dt.timedelta(seconds=1)  # how long a lease seen held elsewhere is not asked for

    def __init__(self, engine: AsyncEngine, term: dt.timedelta) -> None:
        self._engine = engine
        self._term = term
        self.owner = holder_name()
        self._until: dict[str, dt.datetime] = {}  # held, as last written
        self._elsewhere: dict[str, dt.datetime] = {}  # held by another: ask again after

    async def hold(self, name: str) -> bool:
        """Take or renew the lease; False while another replica holds it. Cheap both
        ways: a held lease is written only once half its term has passed, and one held
        elsewhere is asked for again only after a second (or when it runs out)."""
        now = dt.datetime.now(dt.UTC)
        until = self._until.get(name)
        if until is not None and until - now > self._term / 2:
            return True
        if self._elsewhere.get(name, now) > now:
            return False
        expires = now + self._term
        insert = (postgresql if self._engine.dialect.name == "postgresql" else sqlite).insert(lease)
        statement = (
            insert.values(name=name, owner=self.owner, expires_at=expires)
            .on_conflict_do_update(
                index_elements=[lease.c.name],
                set_={"owner": self.owner, "expires_at": expires},
                where=or_(lease.c.owner == self.owner, lease.c.expires_at < now),
            )
            .returning(lease.c.owner)
        )
        async with self._engine.begin() as conn:
            held = (await conn.execute(statement)).first() is not None
            if not held:
                theirs = await conn.scalar(select(lease.c.expires_at).where(lease.c.name == name))
                self._elsewhere[name] = min(theirs or now, now + self.RETRY)
        if held:
            self._until[name] = expires
        else:
            self._until.pop(name, None)
        return held

    @asynccontextmanager
    async def kept(self, name: str) -> AsyncIterator[bool]:
        """Hold the lease for as long as the block runs, renewing it in the background
        (a block may outlast a term: a slow webhook retried). Yields False, and keeps
        nothing, while another replica holds it."""
        if not await self.hold(name):
            yield False
            return
        renewing = asyncio.create_task(self._renew(name), name=f"lease {name}")
        try:
            yield True
        finally:
            renewing.cancel()
            with suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self, name: str) -> None:
        while True:
            await asyncio.sleep(self._term.total_seconds() / 3)
            with suppress(Exception):  # a store out of reach: tried again, or run out
                await self.hold(name)

    async def give_back(self) -> None:
        """Let go of every lease held (the replica stops): others take them at once."""
        if not self._until:
            return
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(lease).where(lease.c.name.in_(self._until), lease.c.owner == self.owner)
                )
        except Exception:
            log.warning("could not give leases back; they run out in %s", self._term)
        self._until.clear()
