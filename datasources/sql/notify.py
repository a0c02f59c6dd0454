"""Wake-ups across processes: PostgreSQL tells listeners when rows are added to a
table (LISTEN/NOTIFY), so a relay or a stream in any replica starts at once instead
of at its next look. Notifications are sent on commit, one per transaction however
many rows it added; a listener that misses some (its connection dropped) still looks
every so often, so they only make things prompt, never correct.

SQLite stores have no such thing: there, writers in this process wake their readers
directly, and others are seen at the next look.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("gateway.notify")
RETRY_SECONDS = 5.0


async def install(conn: AsyncConnection, table: str) -> None:
    """Notify the channel named after `table` whenever rows are inserted (PostgreSQL)."""
    if conn.dialect.name != "postgresql":
        return
    # names come from this package's own tables, never from a request
    await conn.exec_driver_sql(
        f"""CREATE OR REPLACE FUNCTION {table}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('{table}', ''); RETURN NULL; END $$"""
    )
    await conn.exec_driver_sql(
        f"CREATE OR REPLACE TRIGGER {table}_notify AFTER INSERT ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_notify()"
    )


async def send(engine: AsyncEngine, channel: str) -> None:
    """Wake `channel`'s listeners in every replica (PostgreSQL; nothing to do on SQLite)."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})
        await conn.commit()


class Listener:
    """Calls `wake` whenever the channel is notified; reconnects when dropped."""

    def __init__(self, engine: AsyncEngine, channel: str, wake: Callable[[], None]) -> None:
        self._postgres = engine.dialect.name == "postgresql"
        self._dsn = make_url(engine.url).set(drivername="postgresql")
        self._channel = channel
        self._wake = wake
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._postgres:
            self._task = asyncio.create_task(self._listen(), name=f"listen {self._channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _listen(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self._dsn.render_as_string(hide_password=False))
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot listen for %s (%s); looking periodically", self._channel, exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            lost = asyncio.Event()
            try:
                await conn.add_listener(self._channel, self._notified)
                conn.add_termination_listener(partial(_dropped, lost))
                self._wake()  # anything added while nobody listened
                await lost.wait()
            finally:
                with suppress(Exception):
                    await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(RETRY_SECONDS)

    def _notified(self, *_args: Any) -> None:
        self._wake()


def _dropped(lost: asyncio.Event, _conn: Any) -> None:
    lost.set()
