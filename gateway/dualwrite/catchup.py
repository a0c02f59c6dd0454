"""Catch-up: replay what a paused map queued, in order, then run live again.

Each queued entry names a row that changed on one side. Replaying reads that row as
it is now and carries it (or, gone, deletes it on the other side): the other side
ends as the source is, however often the row changed while the map was paused, and
replaying an entry twice changes nothing. Rows the other side refuses go to the
map's error log, to be retried from there.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.dualwrite.initial_sync import copy_rows, log_refused
from gateway.dualwrite.service import DualWriteService
from gateway.dualwrite.tables import queue
from gateway.feed import Notifier
from gateway.kernel.change import Change, ChangeKind
from gateway.kernel.dualwrite import MapState, Side, carry, key_on
from gateway.kernel.errors import GatewayError, NotFound
from gateway.kernel.json import loads
from gateway.kernel.plan import And, Compare, Op, QueryPlan

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
        failed: dict[Side, list[tuple[dict[str, Any], str]]] = {}
        for side in Side:
            keys = _distinct([loads(e.key) for e in entries if e.source == side.value])
            if keys:
                failed[side] = await self._replay(view.definition, side, keys)
        async with self._control.begin() as conn:
            await conn.execute(delete(queue).where(queue.c.id.in_([e.id for e in entries])))
            for side, items in failed.items():
                for row_key, message in items:
                    company = str(row_key.get("dataAreaId", "")).lower()[:4]
                    await log_refused(conn, environment, name, company, side, [(row_key, message)])
        self._notifier.notify()
        return True

    async def _replay(
        self, m: Any, side: Side, keys: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], str]]:
        sources = await self._dualwrite.entities(side)
        targets = await self._dualwrite.entities(side.other)
        entity, goal = sources[m.entity_on(side)], targets[m.entity_on(side.other)]
        store = self._dualwrite.store(side)
        present: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []
        for key in keys:
            where = And(tuple(Compare(k, Op.EQ, v) for k, v in key.items()))
            rows = (
                await store.fetch(
                    QueryPlan(entity, tuple(f.name for f in entity.fields), (), where)
                )
            ).rows
            (present.extend(rows) if rows else gone.append(key))
        _, failed = await copy_rows(self._dualwrite, m, side, entity, goal, targets, present)
        if gone:
            async with self._dualwrite.store(side.other).unit() as unit:
                for key in gone:
                    target_key = key_on(m, side.other, carry(m, side, entity, goal, key, None))
                    derived = Change(goal.name, ChangeKind.DELETE, target_key, origin="dual-write")
                    try:
                        with suppress(NotFound):  # never there, or deleted already
                            await unit.apply(goal, targets, derived, {}, read_back=False)
                    except GatewayError as exc:
                        failed.append((key, exc.message))
        return failed


def _distinct(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for key in keys:
        seen[repr(sorted(key.items()))] = key
    return list(seen.values())
