"""The relay: moves events from each store's outbox into the control store's event log
(which numbers them), then drops them from the outbox. A crash in between hands an
event over twice; the log keeps one (by EventId)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakSet

from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.base import DataSource
from gateway.background import Rounds
from gateway.events import log
from gateway.feed import Notifier

BATCH = 1000


class EventRelay(Rounds):
    """Wakes when a write through this gateway commits events, and when any writer does
    where the store tells (PostgreSQL: LISTEN/NOTIFY); looks anyway every `seconds`."""

    name = "event relay"

    def __init__(
        self,
        control: AsyncEngine,
        stores: Callable[[], list[DataSource]],
        notifier: Notifier,
        seconds: float,
    ) -> None:
        super().__init__(seconds)
        self._control = control
        self._stores = stores
        self._notifier = notifier
        self._watched: WeakSet[Any] = WeakSet()  # the stores that wake this relay

    async def step(self) -> int:
        """Move the oldest waiting events of each store; how many there were."""
        moved = 0
        for store in self._stores():
            if store not in self._watched:
                store.watch_events(self.wake)  # events other processes write
                self._watched.add(store)
            events = await store.take_events(BATCH)
            if not events:
                continue
            async with self._control.begin() as conn:
                await log.append(conn, events)
            await store.forget_events([e["id"] for e in events])
            moved += len(events)
        if moved:
            self._notifier.notify()
        return moved
