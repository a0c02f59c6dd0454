"""The business event stream: what the `businessEvents` subscription serves.

A listener first replays the event log after its cursor, then follows it live. One
reader of the log's tail feeds every listener of this process (one query a round,
however many listen); each listener keeps what it has not sent yet in its own buffer,
so a slow one never holds up the others.

A full buffer loses nothing: its listener goes back to reading the log from its
cursor, and its next message carries a notice saying so; once caught up it follows
the tail again. Events reach a listener at least once and in ControlNumber order
(the log commits them in that order, see `log`); one that reconnects with the last
cursor it saw misses none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.background import Rounds
from gateway.events.log import EventFilter, EventLog, Logged

PAGE = 1000  # events a message carries at most; and a round of the tail reads


@dataclass(frozen=True)
class Delivery:
    """One message to a listener: events in ControlNumber order, the last one's number."""

    cursor: int
    events: list[Logged]
    notice: str | None = None


class _Listener:
    def __init__(self, wanted: EventFilter, capacity: int) -> None:
        self.wanted = wanted
        self.capacity = capacity
        self.buffer: list[Logged] = []
        self.behind = False  # the buffer filled: read the log instead
        self.ready = asyncio.Event()

    def offer(self, events: list[Logged]) -> None:
        if len(self.buffer) + len(events) > self.capacity:
            self.buffer = []
            self.behind = True
        else:
            self.buffer += events
        self.ready.set()

    def take(self, after: int) -> list[Logged]:
        """The buffered events after a cursor, at most a page of them."""
        fresh = [e for e in self.buffer if e.number > after]
        self.buffer = fresh[PAGE:]
        if not self.buffer:
            self.ready.clear()
        return fresh[:PAGE]


class EventStream(Rounds):
    """Reads the log's tail when woken (an event was logged here) and every `seconds`
    (for events other replicas logged)."""

    name = "event stream"

    def __init__(self, log: EventLog, seconds: float, capacity: int) -> None:
        super().__init__(seconds)
        self._log = log
        self._capacity = capacity
        self._listeners: set[_Listener] = set()
        self._joined = 0  # listeners so far
        self._tail: int | None = None  # the last ControlNumber handed to listeners

    async def step(self) -> int:
        if self._tail is None or not self._listeners:
            joined = self._joined
            last = await self._log.last()
            if self._joined == joined:  # nobody joined meanwhile: skip what nobody wants
                self._tail = last
            if not self._listeners:
                return 0
        assert self._tail is not None
        events = await self._log.read(self._tail, PAGE)
        if events:
            self._tail = events[-1].number
            by_filter: dict[EventFilter, list[Logged]] = {}
            for listener in list(self._listeners):
                wanted = by_filter.get(listener.wanted)
                if wanted is None:
                    wanted = by_filter[listener.wanted] = [
                        e for e in events if listener.wanted.accepts(e)
                    ]
                if wanted:
                    listener.offer(wanted)
        return len(events)

    async def listen(self, after: int | None, wanted: EventFilter) -> AsyncIterator[Delivery]:
        """The events after `after` (None: from now on), then each new one, for good."""
        listener = _Listener(wanted, self._capacity)
        self._listeners.add(listener)
        self._joined += 1
        try:
            last = await self._log.last() if after is None else after
            replaying, notice = True, None
            while True:
                if listener.behind:
                    if not replaying:
                        notice = (
                            f"BUFFER_FULL: more than {self._capacity} events waited for this "
                            "listener; it reads them from the event log instead, in order, "
                            "none lost, and follows live again once it has caught up"
                        )
                    listener.behind, replaying = False, True
                if replaying:
                    events = await self._log.read(last, PAGE, wanted)
                    replaying = len(events) == PAGE
                else:
                    await listener.ready.wait()
                    events = [] if listener.behind else listener.take(last)
                if events:
                    last = events[-1].number
                    yield Delivery(last, events, notice)
                    notice = None
        finally:
            self._listeners.discard(listener)
