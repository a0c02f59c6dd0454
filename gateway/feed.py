"""Wake listeners when a row is appended to a stream in the control store.

Listeners read the rows themselves (so a reconnecting one replays from its cursor);
this only says "look again". A listener also looks every `poll` seconds, which
covers rows appended by another gateway sharing the control store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress


class Notifier:
    def __init__(self, poll: float = 1.0) -> None:
        self._poll = poll
        self._event = asyncio.Event()
        self._wakes: list[Callable[[], None]] = []

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()
        for wake in self._wakes:
            wake()

    def also_wake(self, wake: Callable[[], None]) -> None:
        """Call `wake` on every notification too (a background task's)."""
        self._wakes.append(wake)

    async def wait(self) -> None:
        """Until the next notification, or the poll interval."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), self._poll)
