"""The business event stream: what the `businessEvents` subscription serves.

A listener first replays the event log after its cursor, then follows it live. One
reader of the log's tail feeds every listener of this process (one query a round,
however many listen): each round's events are filtered and encoded once per distinct
filter, and that chunk is shared by every listener with the filter, so a listener
costs a few copies of bytes, not work per event. Each listener keeps the chunks it has
not sent yet in its own buffer, so a slow one never holds up the others.

A full buffer loses nothing: its listener goes back to reading the log from its
cursor, and its next message carries a notice saying so; once caught up it follows
the tail again. Events reach a listener at least once and in ControlNumber order
(the log commits them in that order, see `log`); one that reconnects with the last
cursor it saw misses none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property

import orjson

from gateway.background import Rounds
from gateway.events.log import EventFilter, EventLog, Logged

PAGE = 1000  # events a message carries at most; and a round of the tail reads


@dataclass(frozen=True)
class Chunk:
    """Events in ControlNumber order, with their payloads encoded as one JSON list body."""

    events: list[Logged]
    encoded: bytes = field(repr=False)

    @classmethod
    def of(cls, events: list[Logged]) -> Chunk:
        return cls(events, b",".join(e.encoded for e in events))

    @property
    def last(self) -> int:
        return self.events[-1].number

    def after(self, cursor: int) -> Chunk | None:
        """The part of the chunk after a cursor."""
        if self.events[0].number > cursor:
            return self
        rest = [e for e in self.events if e.number > cursor]
        return Chunk.of(rest) if rest else None


@dataclass(frozen=True)
class Delivery:
    """One message to a listener: events in ControlNumber order, the last one's number."""

    chunks: list[Chunk]
    notice: str | None = None

    @property
    def cursor(self) -> int:
        return self.chunks[-1].last

    @cached_property
    def payloads(self) -> orjson.Fragment:
        """The events' payloads as a JSON list, passed through as it is when encoded."""
        return orjson.Fragment(b"[" + b",".join(c.encoded for c in self.chunks) + b"]")


class _Listener:
    def __init__(self, wanted: EventFilter, capacity: int) -> None:
        self.wanted = wanted
        self.capacity = capacity
        self.buffer: list[Chunk] = []
        self.waiting = 0  # events in the buffer
        self.behind = False  # the buffer filled: read the log instead
        self.ready = asyncio.Event()

    def offer(self, chunk: Chunk) -> None:
        if self.waiting + len(chunk.events) > self.capacity:
            self.buffer, self.waiting = [], 0
            self.behind = True
        else:
            self.buffer.append(chunk)
            self.waiting += len(chunk.events)
        self.ready.set()

    def take(self, after: int) -> list[Chunk]:
        """The buffered chunks after a cursor: about a page of events at most."""
        taken: list[Chunk] = []
        count = 0
        while self.buffer and count < PAGE:
            chunk = self.buffer.pop(0)
            self.waiting -= len(chunk.events)
            part = chunk.after(after)
            if part is not None:
                taken.append(part)
                count += len(part.events)
        if not self.buffer:
            self.ready.clear()
        return taken


class EventStream(Rounds):
    """Reads the log's tail when woken (events were logged, here or by another
    replica) and every `seconds` in case a wake-up was missed."""

    name = "event stream"

    def __init__(self, log: EventLog, seconds: float, capacity: int) -> None:
        super().__init__(seconds)
        self._log = log
        self._capacity = capacity
        self._listeners: set[_Listener] = set()
        self._joined = 0  # listeners so far
        self._tail: int | None = None  # the last ControlNumber handed to listeners
        self._logged = log.listener(self.wake)  # events other replicas log

    @property
    def listening(self) -> int:
        """Subscriptions this process is serving now."""
        return len(self._listeners)

    def start(self) -> None:
        super().start()
        self._logged.start()

    async def stop(self) -> None:
        await self._logged.stop()
        await super().stop()

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
            chunks: dict[EventFilter, Chunk | None] = {}
            for listener in list(self._listeners):
                if listener.wanted not in chunks:
                    wanted = [e for e in events if listener.wanted.accepts(e)]
                    chunks[listener.wanted] = Chunk.of(wanted) if wanted else None
                chunk = chunks[listener.wanted]
                if chunk is not None:
                    listener.offer(chunk)
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
                    chunks = [Chunk.of(events)] if events else []
                else:
                    await listener.ready.wait()
                    chunks = [] if listener.behind else listener.take(last)
                if chunks:
                    delivery = Delivery(chunks, notice)
                    last = delivery.cursor
                    yield delivery
                    notice = None
        finally:
            self._listeners.discard(listener)
