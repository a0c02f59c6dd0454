"""Live sync of rows written straight into a store, not through the gateway.

Each store logs what other clients write to the tables of the maps that are on (see
`datasources.sql.tracking`). The tracker reads those logs a few times a second and
carries each changed row, as it is now, through the entity's running maps (a row
that is gone: its counterpart is deleted); for a paused map the row waits in the
map's queue. An entry leaves the log only once it is handled, so a crash replays it,
and replaying changes nothing twice. What the tracker writes is the gateway's own
write, which the other store does not log: it never echoes back.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

from datasources.base import Busy, Untracked
from gateway.background import Rounds
from gateway.dualwrite.catchup import replay
from gateway.dualwrite.initial_sync import key_of, log_refused, read_by_keys
from gateway.dualwrite.service import DualWriteService, record
from gateway.events.raising import outbox_rows
from gateway.feed import Notifier
from gateway.kernel.change import ChangeKind, TrackedChange
from gateway.kernel.dualwrite import DualWriteMap, Side, identity
from gateway.kernel.errors import GatewayError, NotFound
from gateway.leases import Leases

log = logging.getLogger("gateway.dualwrite.tracker")
BATCH = 1000  # logged changes handled per store and round
LEASE = "change tracking"  # one replica at a time reads the stores' change logs


class Moved(Exception):
    """A row changed while it was being carried."""


class ChangeTracker(Rounds):
    name = "change tracking"

    def __init__(
        self,
        dualwrite: DualWriteService,
        notifier: Notifier,
        leases: Leases,
        seconds: float,
        tries: int = 5,
    ) -> None:
        super().__init__(seconds)
        self._leases = leases
        self._dualwrite = dualwrite
        self._notifier = notifier
        self._tries = tries
        self._failures: dict[str, int] = {}  # by map: failed attempts in a row
        self._raising: Callable[[], Awaitable[set[str]]] | None = None
        self._installed: set[str] = set()  # F&O entities tracked for their events

    async def stop(self) -> None:
        await super().stop()
        await self._leases.give_back()

    def track_raising(self, entities: Callable[[], Awaitable[set[str]]]) -> None:
        """Also track the F&O entities this names (those whose events are activated):
        rows written straight into them raise their events too."""
        self._raising = entities

    async def step(self) -> int:
        """Handle the oldest logged changes of each store; how many there were."""
        if not await self._leases.hold(LEASE):
            return 0  # another replica tracks the stores
        handled = 0
        for side in Side:
            try:
                store = self._dualwrite.store(side)
            except NotFound:
                continue  # nothing linked yet
            entities = await self._dualwrite.entities(side)
            names = self._dualwrite.tracked(side)
            if side is Side.FNO and self._raising is not None:
                raising = {n for n in await self._raising() if n in entities}
                if raising - self._installed:
                    wanted = [entities[n] for n in sorted(raising - self._installed)]
                    try:
                        await store.track(wanted)
                    except Untracked as exc:  # a store without a change log: said once
                        log.warning(
                            "rows written straight into %s raise no events: %s",
                            ", ".join(e.name for e in wanted),
                            exc.message,
                        )
                    self._installed |= raising
                names |= raising
            tracked = [entities[n] for n in names if n in entities]
            changes = await store.changes(tracked, BATCH)
            by_entity: dict[str, list[TrackedChange]] = defaultdict(list)
            for change in changes:
                by_entity[change.entity.name].append(change)
            done: list[int] = []
            events: list[dict[str, Any]] = []
            for entries in by_entity.values():
                if await self._handle(side, entries):
                    done += [c.id for c in entries]
                    events += await self._events(side, entries)
            if done:
                await store.forget(done, events)
                handled += len(done)
        if handled:
            self._notifier.notify()
        return handled

    async def _events(self, side: Side, changes: list[TrackedChange]) -> list[dict[str, Any]]:
        """The events the changes raise, as a gateway write of them would (data events
        with the row as it was; business events), for the store's outbox. The row as it
        is after a change is read now: several changes to a row in one round show its
        latest state. Nobody is named as the initiating user. The catalog is F&O's:
        Dataverse tables raise none."""
        if side is Side.DATAVERSE:
            return []
        entity = changes[0].entity
        written = [c.key for c in changes if c.kind is not ChangeKind.DELETE]
        present, _ = await read_by_keys(self._dualwrite.store(side), entity, written)
        now = {_same(key_of(entity, row)): row for row in present}
        events: list[dict[str, Any]] = []
        for c in changes:
            after = now.get(_same(c.key)) if c.kind is not ChangeKind.DELETE else None
            if c.kind is ChangeKind.DELETE or after is not None:
                events += outbox_rows(entity, c.kind, c.before, after, "")
        return events

    async def _handle(self, side: Side, changes: list[TrackedChange]) -> bool:
        """Carry (or queue) one entity's changes; False when they must be read again."""
        entity = changes[0].entity
        running = self._dualwrite.running(side, entity.name)
        queued = self._dualwrite.queued(side, entity.name)
        maps = running + queued
        if not maps:
            return True
        # the latest entry per row; a deleted row is named by its key fields as it was
        latest: dict[str, dict[str, Any]] = {}
        for change in changes:
            key = dict(change.key)
            if change.kind is ChangeKind.DELETE and change.before is not None:
                key.update(identity(maps, side, change.before))
            latest[repr(sorted(change.key.items()))] = key
        keys = list(latest.values())
        if queued:
            await self._dualwrite.enqueue(queued, side, keys)
        if not running:
            return True
        store = self._dualwrite.store(side)
        present, gone = await read_by_keys(store, entity, keys)
        for m in running:
            try:
                await self._carry(m, side, present, gone, len(keys))
            except Moved:
                return False  # read again on the next round
            except Exception as exc:
                failures = self._failures[m.name] = self._failures.get(m.name, 0) + 1
                if failures < self._tries:
                    raise  # the changes stay logged and are tried again
                log.exception("live sync of %s keeps failing; the map goes to Error", m.name)
                message = (
                    exc.message
                    if isinstance(exc, GatewayError)
                    else f"an unexpected {type(exc).__name__} (in the gateway's log)"
                )
                await self._dualwrite.fail(
                    [m.name],
                    f"syncing rows written directly to {side.label} failed {failures} times; "
                    f"the last time: {message}",
                )
                await self._dualwrite.enqueue([m], side, keys)  # kept for a resume
            self._failures.pop(m.name, None)
        return True

    async def _settled(
        self, held: AsyncExitStack, m: DualWriteMap, side: Side, present: list[dict[str, Any]]
    ) -> None:
        """Before a copy commits, hold the rows it was read from until it has (`held`
        lets go): a gateway write to them either committed before, and then they read
        differently now, or waits until the copy is in. One in flight holds them
        already and may have written the other side before this copy did: the rows
        are read again next round."""
        entity = (await self._dualwrite.entities(side))[m.entity_on(side)]
        try:  # SQLite refuses the hold, PostgreSQL the read of a row held elsewhere
            rows = await held.enter_async_context(self._dualwrite.store(side).hold())
            now, _ = await read_by_keys(rows, entity, [key_of(entity, r) for r in present])
        except Busy:
            raise Moved from None
        if now != present:
            raise Moved

    async def _carry(
        self,
        m: DualWriteMap,
        side: Side,
        present: list[dict[str, Any]],
        gone: list[dict[str, Any]],
        count: int,
    ) -> None:
        failed: list[tuple[dict[str, Any], str]] = []
        if present:
            async with AsyncExitStack() as held:
                settled = partial(self._settled, held, m, side, present)
                failed = await replay(self._dualwrite, m, side, present, [], settled)
        if gone:
            failed += await replay(self._dualwrite, m, side, [], gone)
        environment = self._dualwrite.environment
        by_company: dict[str, list[tuple[dict[str, Any], str]]] = defaultdict(list)
        for key, message in failed:
            by_company[str(key.get("dataAreaId", "")).lower()].append((key, message))
        async with self._dualwrite.control.begin() as conn:
            await record(
                conn,
                environment,
                m.name,
                "TRACKED",
                f"{count} rows written directly to {side.label} synced, {len(failed)} refused",
            )
            for company, items in by_company.items():
                await log_refused(conn, environment, m.name, company, side, items)
        if failed:
            await self._dualwrite.check_alerts(m.name)


def _same(key: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A row's key as both a change log and a read name it."""
    return tuple(sorted((name, str(value).lower()) for name, value in key.items()))
