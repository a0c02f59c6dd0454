"""The catalog in GraphQL: list and search entities, make them visible, refresh them."""

from __future__ import annotations

import datetime as dt

import strawberry

from gateway.auth import Role
from gateway.catalog.service import CatalogEntry
from schema.context import RequestContext


@strawberry.type(description="A field of a published entity.")
class CatalogField:
    name: str
    type: str
    label: str
    nullable: bool
    is_key: bool = strawberry.field(name="isKey")
    read_only: bool = strawberry.field(name="readOnly")
    length: int | None
    enum_name: str | None = strawberry.field(name="enumName")
    enum_symbols: list[str] | None = strawberry.field(name="enumSymbols")


@strawberry.type(description="A relation from a published entity to another.")
class CatalogRelation:
    name: str
    target: str
    cardinality: str


@strawberry.type(description="An entity the F&O store publishes. Visible ones are in the schema.")
class CatalogEntity:
    name: str
    collection_name: str = strawberry.field(name="collectionName")
    label: str
    visible: bool
    published: bool = strawberry.field(description="False once the F&O store stops publishing it.")
    company_scoped: bool = strawberry.field(name="companyScoped")
    last_refreshed_at: dt.datetime = strawberry.field(name="lastRefreshedAt")
    refresh_needed: bool = strawberry.field(
        name="refreshNeeded", description="The F&O definition changed since the last refresh."
    )
    fields: list[CatalogField]
    relations: list[CatalogRelation]


def to_graphql(entry: CatalogEntry) -> CatalogEntity:
    entity = entry.metadata
    return CatalogEntity(
        name=entry.name,
        collection_name=entry.collection_name,
        label=entry.label,
        visible=entry.visible,
        published=entry.published,
        company_scoped=entity.company_scoped,
        last_refreshed_at=entry.last_refreshed_at,
        refresh_needed=entry.refresh_needed,
        fields=[
            CatalogField(
                name=f.name,
                type=f.type.value,
                label=f.label,
                nullable=f.nullable,
                is_key=f.is_key,
                read_only=f.read_only,
                length=f.length,
                enum_name=f.enum.name if f.enum else None,
                enum_symbols=[m.symbol for m in f.enum.members] if f.enum else None,
            )
            for f in entity.fields
        ],
        relations=[
            CatalogRelation(name=r.name, target=r.target, cardinality=r.cardinality.value)
            for r in entity.relations
        ],
    )


@strawberry.field(
    name="entityCatalog",
    description="Published entities; search matches name, collection or label.",
)
async def entity_catalog(
    info: strawberry.Info, search: str | None = None, visible: bool | None = None
) -> list[CatalogEntity]:
    context: RequestContext = info.context
    context.require(Role.READER)
    return [to_graphql(e) for e in await context.catalog.entries(search, visible)]


@strawberry.field(name="catalogEntity", description="One published entity by name.")
async def catalog_entity(info: strawberry.Info, name: str) -> CatalogEntity:
    context: RequestContext = info.context
    context.require(Role.READER)
    return to_graphql(await context.catalog.entry(name))


@strawberry.mutation(
    name="setEntityVisible",
    description="Put an entity in the schema (or take it out). The new schema serves "
    "the next request; no restart.",
)
async def set_entity_visible(info: strawberry.Info, name: str, visible: bool) -> CatalogEntity:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    return to_graphql(await context.catalog.set_visible(name, visible))


@strawberry.mutation(
    name="refreshEntity", description="Re-read an entity's definition from the F&O store."
)
async def refresh_entity(info: strawberry.Info, name: str) -> CatalogEntity:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    return to_graphql(await context.catalog.refresh(name))


@strawberry.mutation(
    name="refreshCatalog",
    description="Discover entities the F&O store published or withdrew since the last look.",
)
async def refresh_catalog(info: strawberry.Info) -> list[CatalogEntity]:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    return [to_graphql(e) for e in await context.catalog.sync()]


QUERIES = [entity_catalog, catalog_entity]
MUTATIONS = [set_entity_visible, refresh_entity, refresh_catalog]
