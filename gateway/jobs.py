"""Durable jobs: a row per job in the control store, a lease, and a runner.

A service submits a job in the same transaction as the change that asks for it, so
a job exists exactly when its request committed. The runner claims due jobs under a
lease it renews while it works; a process that dies stops renewing, and once the
lease runs out any gateway sharing the control store takes the job over. Handlers
run one step at a time and every step is idempotent, so a step cut short by a crash
is simply run again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from sqlalchemy import Boolean, Column, Integer, String, Table, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from datasources.sql.tables import UtcDateTime
from gateway.control import control_metadata
from gateway.kernel.errors import GatewayError
from gateway.leases import holder_name

log = logging.getLogger("gateway.jobs")

job = Table(
    "job",
    control_metadata,
    Column("kind", String(40), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("due", Boolean, nullable=False),
    Column("lease_owner", String(100)),  # host:process:random, as leases name holders
    Column("lease_expires_at", UtcDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", UtcDateTime),
    Column("requests", Integer, nullable=False, default=0),
)

Step = Callable[[str], Awaitable[bool]]
GiveUp = Callable[[str, str], Awaitable[None]]
"""Run the next step of the job with this key; True while steps remain."""


async def submit(conn: AsyncConnection, kind: str, key: str) -> None:
    """Make the job due, inside the caller's transaction."""
    fresh = {"due": True, "attempts": 0, "not_before": None}
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(job)
    await conn.execute(
        insert.values(kind=kind, key=key, requests=1, **fresh).on_conflict_do_update(
            index_elements=[job.c.kind, job.c.key],
            set_={**fresh, "requests": job.c.requests + 1},
        )
    )


class JobRunner:
    """Claims due jobs and runs their steps, a few at a time."""

    def __init__(
        self,
        engine: AsyncEngine,
        lease: dt.timedelta,
        poll: float = 1.0,
        concurrency: int = 4,
        tries: int = 5,
    ) -> None:
        self._engine = engine
        self._lease = lease
        self._poll = poll
        self._concurrency = concurrency
        self.owner = holder_name()
        self._tries = tries
        self._steps: dict[str, Step] = {}
        self._give_up: dict[str, GiveUp] = {}
        self._wake = asyncio.Event()
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._requests: dict[tuple[str, str], int] = {}  # as seen when claimed
        self._attempts: dict[tuple[str, str], int] = {}  # claims since it was submitted
        self._loop: asyncio.Task[None] | None = None
        self._stopping = False

    def register(self, kind: str, step: Step, give_up: GiveUp | None = None) -> None:
        """Run jobs of this kind with `step`. With `give_up`, a job that fails `tries`
        times in a row stops being retried: `give_up(key, message)` says why."""
        self._steps[kind] = step
        if give_up is not None:
            self._give_up[kind] = give_up

    def wake(self) -> None:
        """Look for due jobs now (a service just submitted one)."""
        self._wake.set()

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run_forever(), name="job-runner")

    async def stop(self) -> None:
        """Stop claiming; let each running job finish its step (and give its lease
        back, for whoever starts next), cancelling what is still busy after a while."""
        self._stopping = True
        if self._loop is not None:
            self._loop.cancel()
            with suppress(asyncio.CancelledError):
                await self._loop
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=10)
        for task in running:
            task.cancel()
        for task in running:
            with suppress(asyncio.CancelledError):
                await task

    async def _run_forever(self) -> None:
        while True:
            try:
                for kind, key in await self._claim():
                    task = asyncio.create_task(self._run(kind, key), name=f"job {kind} {key}")
                    self._running[(kind, key)] = task
            except Exception:
                log.exception("could not claim jobs; trying again")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()

    async def _claim(self) -> list[tuple[str, str]]:
        free = self._concurrency - len(self._running)
        if free <= 0:
            return []
        now = dt.datetime.now(dt.UTC)
        claimable = and_(
            job.c.due,
            or_(job.c.lease_expires_at.is_(None), job.c.lease_expires_at < now),
            or_(job.c.not_before.is_(None), job.c.not_before <= now),
            job.c.kind.in_(self._steps),
        )
        claimed: list[tuple[str, str]] = []
        async with self._engine.begin() as conn:
            candidates = await conn.execute(
                select(job.c.kind, job.c.key, job.c.requests, job.c.attempts).where(claimable)
            )
            for kind, key, requests, attempts in candidates:
                if len(claimed) == free or (kind, key) in self._running:
                    continue
                result = await conn.execute(
                    update(job)
                    .where(claimable, job.c.kind == kind, job.c.key == key)
                    .values(
                        lease_owner=self.owner,
                        lease_expires_at=now + self._lease,
                        attempts=job.c.attempts + 1,
                    )
                )
                if result.rowcount == 1:
                    claimed.append((kind, key))
                    self._requests[(kind, key)] = requests
                    self._attempts[(kind, key)] = (attempts or 0) + 1
        return claimed

    async def _run(self, kind: str, key: str) -> None:
        heartbeat = asyncio.create_task(self._renew(kind, key))
        try:
            while await self._steps[kind](key):
                if self._stopping:  # the gateway stops: the next step is someone else's
                    await self._let_go(kind, key)
                    return
            await self._release(kind, key, done=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            incident = uuid.uuid4().hex[:12]
            give_up = self._give_up.get(kind)
            final = give_up is not None and self._attempts.get((kind, key), 1) >= self._tries
            log.exception(
                "job %s %s failed (incident %s); %s",
                kind,
                key,
                incident,
                "giving up" if final else "it will be retried",
            )
            if give_up is not None and final:
                message = (
                    exc.message
                    if isinstance(exc, GatewayError)
                    else f"an unexpected error (incident {incident} in the gateway's log)"
                )
                await give_up(key, f"failed {self._tries} times; the last time: {message}")
            await self._release(kind, key, done=final)
        finally:
            heartbeat.cancel()
            self._running.pop((kind, key), None)
            self._requests.pop((kind, key), None)
            self._attempts.pop((kind, key), None)

    async def _renew(self, kind: str, key: str) -> None:
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            with suppress(Exception):
                async with self._engine.begin() as conn:
                    await conn.execute(
                        update(job)
                        .where(
                            job.c.kind == kind, job.c.key == key, job.c.lease_owner == self.owner
                        )
                        .values(lease_expires_at=dt.datetime.now(dt.UTC) + self._lease)
                    )

    async def _let_go(self, kind: str, key: str) -> None:
        """Give the lease back, the job still due: it goes on at once elsewhere."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(job)
                .where(self._mine(kind, key))
                .values(lease_owner=None, lease_expires_at=None)
            )

    def _mine(self, kind: str, key: str) -> Any:
        return and_(job.c.kind == kind, job.c.key == key, job.c.lease_owner == self.owner)

    async def _release(self, kind: str, key: str, done: bool) -> None:
        """Give the lease back: done (unless asked again meanwhile), or due after a backoff."""
        free = {"lease_owner": None, "lease_expires_at": None}
        async with self._engine.begin() as conn:
            if done:
                seen = self._requests.get((kind, key))
                finished = await conn.execute(
                    update(job)
                    .where(self._mine(kind, key), job.c.requests == seen)
                    .values(due=False, **free)
                )
                if finished.rowcount == 0:  # submitted again while running: stays due
                    await conn.execute(update(job).where(self._mine(kind, key)).values(**free))
                return
            attempts = await conn.scalar(
                select(job.c.attempts).where(job.c.kind == kind, job.c.key == key)
            )
            backoff = dt.timedelta(seconds=min(300, 2 ** min(attempts or 1, 9)))
            await conn.execute(
                update(job)
                .where(self._mine(kind, key))
                .values(not_before=dt.datetime.now(dt.UTC) + backoff, **free)
            )
