"""Catch-up: replay what a paused map queued, in order, then run live again.

Each queued entry names a row that changed on one side. Replaying reads that row as
it is now and carries it (or, gone, deletes it on the other side): the other side
ends as the source is, however often the row changed while the map was paused, and
replaying an entry twice changes nothing. A row changed on both sides while paused is
a conflict: the map's master keeps its version. Rows the other side refuses go to the
map's error log, to be retried from there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.dualwrite.initial_sync import copy_rows, log_refused, read_by_keys
from gateway.dualwrite.service import DualWriteService, record
from gateway.dualwrite.tables import queue
from gateway.events.raising import outbox_rows
from gateway.feed import Notifier
from gateway.kernel.change import Change, ChangeKind
from gateway.kernel.dualwrite import DualWriteMap, MapState, Master, Side, carry, key_on
from gateway.kernel.errors import GatewayError, NotFound
from gateway.kernel.json import loads

BATCH = 500


class CatchUp:
    def __init__(
        self, control: AsyncEngine, dualwrite: DualWriteService, notifier: Notifier
    ) -> None:
        self._control = control
        self._dualwrite = dualwrite
        self._notifier = notifier

    async def step(self, key: str) -> bool:
        """Replay the next queued entries; True while the map is still catching up."""
        environment, _, name = key.partition("/")
        view = await self._dualwrite.map(name)
        if view.state not in (MapState.RESUMING, MapState.RUNNING):
            return False  # stopped or paused again meanwhile
        async with self._control.connect() as conn:
            entries = (
                await conn.execute(
                    select(queue)
                    .where(queue.c.environment == environment, queue.c.map == name)
                    .order_by(queue.c.id)
                    .limit(BATCH)
                )
            ).all()
        if not entries:
            if view.state is MapState.RUNNING:
                return False
            async with self._control.begin() as conn:
                await self._dualwrite.set_state_in(conn, [name], MapState.RUNNING)
            await self._dualwrite.refresh()
            self._notifier.notify()
            return True  # once more: entries queued while the state changed are replayed
        m = view.definition
        rows = {
            side: await self._read(
                m, side, [loads(e.key) for e in entries if e.source == side.value]
            )
            for side in Side
        }
        # a row changed on both sides while paused: the master's version is kept
        master = Side.DATAVERSE if view.master is Master.DATAVERSE else Side.FNO
        theirs = {self._identity(m, master, r) for r in rows[master][0]}
        loser = master.other
        present, gone = rows[loser]
        rows[loser] = ([r for r in present if self._identity(m, loser, r) not in theirs], gone)
        failed: dict[Side, list[tuple[dict[str, Any], str]]] = {}
        for side in Side:
            present, gone = rows[side]
            if present or gone:
                failed[side] = await replay(self._dualwrite, m, side, present, gone)
        async with self._control.begin() as conn:
            await conn.execute(delete(queue).where(queue.c.id.in_([e.id for e in entries])))
            refused = sum(len(items) for items in failed.values())
            await record(
                conn,
                environment,
                name,
                "CATCH_UP",
                f"replayed {len(entries)} queued changes, {refused} refused",
            )
            for side, items in failed.items():  # in the transaction that drops the entries
                for row_key, message in items:
                    company = str(row_key.get("dataAreaId", "")).lower()[:4]
                    await log_refused(conn, environment, name, company, side, [(row_key, message)])
        if refused:
            await self._dualwrite.check_alerts(name)
        self._notifier.notify()
        return True

    async def give_up(self, key: str, message: str) -> None:
        """Replaying keeps failing: the map goes to Error, its queue kept for a resume."""
        await self._dualwrite.fail([key.partition("/")[2]], f"catch-up {message}")

    async def _read(
        self, m: DualWriteMap, side: Side, keys: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The rows as they are now, and the keys of those deleted since."""
        if not keys:
            return [], []
        entity = (await self._dualwrite.entities(side))[m.entity_on(side)]
        return await read_by_keys(self._dualwrite.store(side), entity, _distinct(keys))

    def _identity(self, m: DualWriteMap, side: Side, row: dict[str, Any]) -> tuple[Any, ...]:
        """The row's map key, the same whichever side it is read on."""
        index = 0 if side is Side.FNO else 1
        return tuple(
            str(row.get(pair[index])).lower() if row.get(pair[index]) is not None else None
            for pair in m.key
        )


async def replay(
    dualwrite: DualWriteService,
    m: DualWriteMap,
    side: Side,
    present: list[dict[str, Any]],
    gone: list[dict[str, Any]],
    settled: Callable[[], Awaitable[None]] | None = None,
) -> list[tuple[dict[str, Any], str]]:
    """Carry rows of `side` as they are now through the map, and remove on the other
    side the rows `gone` names (each with at least the map's key fields); the rows
    refused and why. `settled` runs before the carried rows commit (see copy_rows)."""
    sources = await dualwrite.entities(side)
    targets = await dualwrite.entities(side.other)
    entity, goal = sources[m.entity_on(side)], targets[m.entity_on(side.other)]
    _, failed = await copy_rows(dualwrite, m, side, entity, goal, targets, present, settled)
    if gone:
        async with dualwrite.store(side.other).unit() as unit:
            for row in gone:
                target_key = key_on(m, side.other, carry(m, side, entity, goal, row, None))
                if len(target_key) < len(m.key):
                    failed.append((row, "its key on the other side is not known any more"))
                    continue
                derived = Change(goal.name, ChangeKind.DELETE, target_key, origin="dual-write")
                try:
                    with suppress(NotFound):  # never there, or deleted already
                        before, _ = await unit.apply(goal, targets, derived, {}, read_back=False)
                        if side.other is Side.FNO:  # the catalog is F&O's
                            await unit.raise_events(
                                outbox_rows(goal, ChangeKind.DELETE, before, None, "")
                            )
                except GatewayError as exc:
                    failed.append((row, exc.message))
    return failed


def _distinct(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for key in keys:
        seen[repr(sorted(key.items()))] = key
    return list(seen.values())
