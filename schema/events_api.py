"""Business events in GraphQL: the catalog (business events, and the data events of
every visible entity), each with its payload's JSON Schema."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from gateway.auth import Principal, Role
from gateway.events.log import EventFilter
from gateway.kernel.errors import BadUserInput
from gateway.kernel.events import CATALOG, BusinessEvent, data_events
from gateway.kernel.json import plain
from schema.context import RequestContext


@strawberry.type(name="BusinessEvent", description="An event of the business event catalog.")
class BusinessEventEntry:
    id: str = strawberry.field(description="BusinessEventId in the payload.")
    name: str
    category: str
    description: str
    major_version: int = strawberry.field(name="majorVersion")
    minor_version: int = strawberry.field(name="minorVersion")
    entity: str | None = strawberry.field(description="A data event's entity.")
    schema: JSON = strawberry.field(description="The payload's JSON Schema.")

    @classmethod
    def of(cls, event: BusinessEvent) -> BusinessEventEntry:
        return cls(
            id=event.id,
            name=event.name,
            category=event.category,
            description=event.description,
            major_version=event.major,
            minor_version=event.minor,
            entity=event.entity,
            schema=cast(JSON, event.schema()),
        )


@strawberry.field(
    name="businessEventCatalog",
    description="Business events, then the created/updated/deleted data events of every "
    "visible entity; `category` narrows them.",
)
async def business_event_catalog(
    info: strawberry.Info, category: str | None = None
) -> list[BusinessEventEntry]:
    context: RequestContext = info.context
    context.require(Role.READER)
    events = list(CATALOG)
    for entry in await context.catalog.entries(None, True):
        events += data_events(entry.metadata)
    return [BusinessEventEntry.of(e) for e in events if category in (None, e.category)]


@strawberry.input(description="Which events to receive; a field left out lets every value through.")
class BusinessEventFilter:
    events: list[str] | None = strawberry.field(default=None, description="BusinessEventIds.")
    categories: list[str] | None = None
    legal_entities: list[str] | None = strawberry.field(default=None, name="legalEntities")
    entities: list[str] | None = strawberry.field(
        default=None, description="Entities whose data events to receive."
    )

    def narrowed(self, principal: Principal) -> EventFilter:
        """The filter, kept to the legal entities the caller may read."""
        companies = self.legal_entities
        if principal.companies is not None:
            asked = [c.upper() for c in companies or principal.companies]
            companies = [c for c in asked if principal.may_read(c)] or ["-"]
        return EventFilter.of(self.events, self.categories, companies, self.entities)


@strawberry.field(
    name="businessEvents",
    description="Events after a ControlNumber, oldest first, as their payloads: the "
    "contract's envelope, then the event's fields. Narrow them by event id, category, "
    "legal entity or (data events) entity.",
)
async def business_events(
    info: strawberry.Info,
    after: int = 0,
    first: int = 100,
    events: list[str] | None = None,
    categories: list[str] | None = None,
    legal_entities: Annotated[list[str] | None, strawberry.argument(name="legalEntities")] = None,
    entities: list[str] | None = None,
) -> list[JSON]:
    context: RequestContext = info.context
    principal = context.require(Role.READER)
    if not 0 < first <= 10_000:
        raise BadUserInput("first is between 1 and 10000")
    wanted = BusinessEventFilter(
        events=events, categories=categories, legal_entities=legal_entities, entities=entities
    ).narrowed(principal)
    found = await context.control.events.read(after, first, wanted)
    return [cast(JSON, plain(e.payload)) for e in found]


QUERIES = [business_event_catalog, business_events]


@strawberry.type(description="Events in ControlNumber order, as many as were waiting.")
class BusinessEventBatch:
    cursor: str = strawberry.field(
        description="The last event's ControlNumber: subscribe again with `after` set to "
        "it and nothing is missed."
    )
    events: JSON = strawberry.field(description="The events' payloads (a list), oldest first.")
    notice: str | None = strawberry.field(
        description="Set when the gateway changed how it serves this listener, e.g. "
        "BUFFER_FULL: it fell behind and now reads the event log (nothing is lost)."
    )


@strawberry.subscription(
    name="businessEvents",
    description="The events after `after` (a cursor or ControlNumber; left out: from now "
    "on), then each new one as it is logged: at least once, in ControlNumber order.",
)
async def watch_business_events(
    info: strawberry.Info,
    filter: BusinessEventFilter | None = None,
    after: str | None = None,
) -> AsyncGenerator[BusinessEventBatch, None]:
    context: RequestContext = info.context
    principal = context.require(Role.READER)
    try:
        cursor = None if after is None else int(after)
    except ValueError:
        raise BadUserInput(f"after: {after!r} is not a cursor (a ControlNumber)") from None
    wanted = (filter or BusinessEventFilter()).narrowed(principal)
    async for delivery in context.control.stream.listen(cursor, wanted):
        yield BusinessEventBatch(
            cursor=str(delivery.cursor),
            events=cast(JSON, delivery.payloads),
            notice=delivery.notice,
        )


SUBSCRIPTIONS = [watch_business_events]
