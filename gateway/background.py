"""A background task that works in rounds until it is stopped: the change tracker,
the event relay. A round that found nothing to do waits, until woken or due again; a
failing round is logged and retried after a growing pause."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from contextlib import suppress

log = logging.getLogger("gateway")


class Rounds(ABC):
    name = "rounds"

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    @abstractmethod
    async def step(self) -> int:
        """One round; how much it did (0: nothing waited)."""

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run_forever(), name=self.name)

    def wake(self) -> None:
        """There is work: start a round now, not at the next look."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the round under way (its connections go back to their pool), then stop."""
        if self._task is None:
            return
        self._stopping.set()
        self._wake.set()
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), 10)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                done = await self.step()
                failures = 0
            except Exception:
                failures += 1
                log.exception("%s failed; its work stays where it is and is tried again", self.name)
                done = 0
            if not done:
                with suppress(TimeoutError):
                    pause = min(30.0, self._seconds * 2 ** min(failures, 8))
                    await asyncio.wait_for(self._wake.wait(), pause)
                self._wake.clear()
