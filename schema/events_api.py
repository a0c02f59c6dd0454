"""Business events in GraphQL: the catalog (business events, and the data events of
every visible entity), each with its payload's JSON Schema."""

from __future__ import annotations

from typing import cast

import strawberry
from strawberry.scalars import JSON

from gateway.auth import Role
from gateway.kernel.events import CATALOG, BusinessEvent, data_events
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


QUERIES = [business_event_catalog]
