"""Business events in GraphQL: the catalog (business events, and the data events of
every visible entity), each with its payload's JSON Schema."""

from __future__ import annotations

from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from gateway.auth import Role
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
    if principal.companies is not None:  # only the legal entities it may read
        asked = [c.upper() for c in legal_entities or principal.companies]
        legal_entities = [c for c in asked if principal.may_read(c)] or ["-"]
    if not 0 < first <= 10_000:
        raise BadUserInput("first is between 1 and 10000")
    found = await context.control.events.read(
        after, first, events, categories, legal_entities, entities
    )
    return [cast(JSON, e) for e in plain(found)]


QUERIES = [business_event_catalog, business_events]
