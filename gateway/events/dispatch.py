"""The dispatcher: takes each endpoint through the event log and delivers what its
activations route to it, in ControlNumber order, at least once.

A failing delivery is tried again after a pause that doubles each time, with jitter
(the endpoint's `tries` and `wait_seconds`; by default Microsoft's three tries about a
second apart). One that still fails goes to the errors store, with the payload as
sent, to be resent from there, to the same endpoint or another. Every attempt's
outcome is in the delivery log. Endpoints advance independently: a slow one never
holds up the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from gateway.background import Rounds
from gateway.events.endpoints import Endpoint, EndpointKind, EndpointService
from gateway.events.log import EventFilter, EventLog, Logged
from gateway.events.senders import (
    Brokers,
    BrokerSender,
    DeliveryFailed,
    Message,
    Sender,
    WebhookSender,
)
from gateway.events.tables import delivery, error
from gateway.kernel.events import BusinessEvent, envelope
from gateway.leases import Leases

log = logging.getLogger("gateway.events.dispatch")
BATCH = 500  # events an endpoint reads from the log at a time
TEST_EVENT = BusinessEvent(
    "BusinessEventsTestEndpointBusinessEvent",
    "Test message",
    "Business events",
    "Sent on request to check that an endpoint receives events.",
    (("Message", "string"),),
)


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    tries: int
    detail: str
    milliseconds: int


class Dispatcher(Rounds):
    """Looks when woken (events were logged, an activation changed) and every `seconds`."""

    name = "event dispatch"

    def __init__(
        self,
        control: AsyncEngine,
        log: EventLog,
        endpoints: EndpointService,
        brokers: Brokers,
        leases: Leases,
        seconds: float,
        timeout: float,
    ) -> None:
        super().__init__(seconds)
        self._leases = leases
        self._control = control
        self._log = log
        self._endpoints = endpoints
        self._brokers = brokers
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._running: dict[str, asyncio.Task[None]] = {}

    async def step(self) -> int:
        for e in await self._endpoints.endpoints():
            task = self._running.get(e.name)
            if task is None or task.done():
                self._running[e.name] = asyncio.create_task(
                    self._advance(e.name), name=f"deliver to {e.name}"
                )
        return 0

    async def stop(self) -> None:
        await super().stop()
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        await self._client.aclose()
        await self._brokers.close()
        await self._leases.give_back()

    async def _advance(self, name: str) -> None:
        """Deliver what is routed to the endpoint after its position, then move it on,
        unless another replica delivers to it (one at a time keeps the log's order)."""
        try:
            async with self._leases.kept(f"deliveries to {name}") as held:
                if held:
                    await self._deliver_next(name)
        except Exception:
            log.exception("delivering business events to %s failed; tried again later", name)

    async def _deliver_next(self, name: str) -> None:
        """One batch, in order. The endpoint is read here, not when the task was made:
        a task just ended may have moved it."""
        e = await self._endpoints.endpoint(name)
        routes = [a for a in await self._endpoints.activations() if a.endpoint == name]
        last = await self._log.last()
        if last <= e.position:
            return
        events: list[Logged] = []
        if routes:
            wanted = EventFilter.of(events=[a.business_event for a in routes])
            events = await self._log.read(e.position, BATCH, wanted)
        end = events[-1].number if len(events) == BATCH else last
        sender = self.sender(e)
        for event in events:
            if event.number <= end and any(
                a.routes(event.event, event.legal_entity) for a in routes
            ):
                await self.deliver(e, sender, event, e.tries)
        if await self._endpoints.advance(e.name, e.position, end) and events:
            self.wake()  # there may be more

    def sender(self, e: Endpoint) -> Sender:
        if e.kind is EndpointKind.BROKER:
            assert e.subject is not None
            return BrokerSender(self._brokers, e.url, e.subject)
        assert e.secret is not None
        return WebhookSender(self._client, e.url, e.secret)

    async def deliver(self, e: Endpoint, sender: Sender, event: Logged, tries: int) -> Outcome:
        """Deliver one event with retries; log the outcome; store a failure as an error."""
        message = Message(
            str(event.payload["EventId"]),
            event.event,
            event.category,
            event.legal_entity,
            event.encoded,
        )
        outcome = await self._send(sender, message, tries, e.wait_seconds)
        async with self._control.begin() as conn:
            await _logged(conn, e, event.number, message, outcome)
            if not outcome.delivered and event.number:
                await conn.execute(
                    error.insert().values(
                        endpoint=e.name,
                        control_number=event.number,
                        event_id=message.event_id,
                        business_event=message.business_event,
                        category=message.category,
                        legal_entity=message.legal_entity,
                        payload=message.body.decode(),
                        message=outcome.detail,
                        tries=outcome.tries,
                        at=dt.datetime.now(dt.UTC),
                    )
                )
        return outcome

    async def _send(self, sender: Sender, message: Message, tries: int, wait: int) -> Outcome:
        started = time.monotonic()
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(tries),
                wait=wait_exponential_jitter(multiplier=wait, max=max(60, wait), jitter=wait),
                retry=retry_if_exception_type(DeliveryFailed),
                reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    detail = await sender.send(message)
        except DeliveryFailed as exc:
            return Outcome(False, attempts, exc.message, _since(started))
        return Outcome(True, attempts, detail, _since(started))

    # on request

    async def test(self, name: str, actor: str) -> Outcome:
        """Send the endpoint a test message, once; the outcome is in its delivery log."""
        e = await self._endpoints.endpoint(name)
        fields = {"Message": f"A test message to {name}, sent by {actor}."}
        payload = envelope(
            TEST_EVENT, "", 0, str(uuid.uuid4()), dt.datetime.now(dt.UTC), actor, fields
        )
        event = Logged(0, TEST_EVENT.id, TEST_EVENT.category, "", None, payload)
        return await self.deliver(e, self.sender(e), event, 1)

    async def resend(self, ids: list[int], to: str | None) -> list[tuple[int, Outcome]]:
        """Send stored errors again, as they were sent (to their endpoint, or to `to`);
        those delivered stay in the store as resent, and the delivery log says where."""
        results = []
        for error_id in ids:
            row = await self._endpoints.error(error_id)
            target = await self._endpoints.endpoint(to or row.endpoint)
            message = Message(
                row.event_id,
                row.business_event,
                row.category,
                row.legal_entity,
                row.payload.encode(),
            )
            outcome = await self._send(
                self.sender(target), message, target.tries, target.wait_seconds
            )
            async with self._control.begin() as conn:
                await _logged(conn, target, row.control_number, message, outcome, "resent: ")
                if outcome.delivered:
                    await conn.execute(
                        update(error)
                        .where(error.c.id == error_id)
                        .values(resent_at=dt.datetime.now(dt.UTC), resent_to=target.name)
                    )
            results.append((error_id, outcome))
        return results


async def _logged(
    conn: AsyncConnection,
    e: Endpoint,
    number: int,
    message: Message,
    outcome: Outcome,
    note: str = "",
) -> None:
    await conn.execute(
        delivery.insert().values(
            endpoint=e.name,
            control_number=number,
            event_id=message.event_id,
            business_event=message.business_event,
            delivered=outcome.delivered,
            tries=outcome.tries,
            detail=note + outcome.detail,
            milliseconds=outcome.milliseconds,
            at=dt.datetime.now(dt.UTC),
        )
    )


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
