"""`CatalogService`: discover published entities, make them visible, refresh their metadata.

The catalog keeps a snapshot of each entity's metadata as of its last refresh, as
Dataverse does for a virtual entity: the schema is built from snapshots, and a
changed definition in the F&O store shows as `refresh_needed` until refreshed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import Boolean, Column, DateTime, String, Table, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.base import DataSource
from gateway.control import control_metadata
from gateway.kernel.catalog import (
    EntityMetadata,
    ResolvedCatalog,
    entity_from_dict,
    entity_to_dict,
    resolve_catalog,
)
from gateway.kernel.errors import NotFound
from gateway.kernel.json import dumps, loads

catalog_entry = Table(
    "catalog_entry",
    control_metadata,
    Column("name", String(81), primary_key=True),
    Column("collection_name", String(81), nullable=False),
    Column("label", String(200), nullable=False),
    Column("visible", Boolean, nullable=False, default=False),
    Column("published", Boolean, nullable=False, default=True),
    Column("refresh_needed", Boolean, nullable=False, default=False),
    Column("last_refreshed_at", DateTime(timezone=True), nullable=False),
    Column("fingerprint", String(32), nullable=False),
    Column("snapshot", Text, nullable=False),
)

Listener = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    collection_name: str
    label: str
    visible: bool
    published: bool
    refresh_needed: bool
    last_refreshed_at: dt.datetime
    metadata: EntityMetadata


class CatalogService:
    def __init__(self, control: AsyncEngine, source: DataSource) -> None:
        self._control = control
        self._source = source
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()

    def on_change(self, listener: Listener) -> None:
        """Call `listener` after every change that alters what is visible."""
        self._listeners.append(listener)

    async def _changed(self) -> None:
        for listener in self._listeners:
            await listener()

    async def sync(self) -> list[CatalogEntry]:
        """Compare the store's published entities with the catalog and record differences.

        New entities enter the catalog (visible when the store marks them auto-create);
        changed ones are flagged `refresh_needed`; vanished ones are unpublished.
        """
        published = {e.name: e for e in await self._source.published_entities()}
        now = dt.datetime.now(dt.UTC)
        changed = False
        async with self._lock, self._control.begin() as conn:
            rows = {r.name: r for r in await conn.execute(select(catalog_entry))}
            for name, entity in published.items():
                row = rows.get(name)
                if row is None:
                    await conn.execute(
                        insert(catalog_entry).values(
                            **_values(entity, now), visible=entity.auto_create
                        )
                    )
                    changed = changed or entity.auto_create
                    continue
                needs = row.fingerprint != entity.fingerprint()
                if needs != row.refresh_needed or not row.published:
                    await conn.execute(
                        update(catalog_entry)
                        .where(catalog_entry.c.name == name)
                        .values(refresh_needed=needs, published=True)
                    )
                    changed = changed or (not row.published and row.visible)
            for name, row in rows.items():
                if name not in published and row.published:
                    await conn.execute(
                        update(catalog_entry)
                        .where(catalog_entry.c.name == name)
                        .values(published=False)
                    )
                    changed = changed or row.visible
        if changed:
            await self._changed()
        return await self.entries()

    async def entries(
        self, search: str | None = None, visible: bool | None = None
    ) -> list[CatalogEntry]:
        stmt = select(catalog_entry).order_by(catalog_entry.c.name)
        if visible is not None:
            stmt = stmt.where(catalog_entry.c.visible == visible)
        if search:
            pattern = search.lower()
            stmt = stmt.where(
                catalog_entry.c.name.icontains(pattern, autoescape=True)
                | catalog_entry.c.collection_name.icontains(pattern, autoescape=True)
                | catalog_entry.c.label.icontains(pattern, autoescape=True)
            )
        async with self._control.connect() as conn:
            return [_entry(row) for row in await conn.execute(stmt)]

    async def entry(self, name: str) -> CatalogEntry:
        async with self._control.connect() as conn:
            row = (
                await conn.execute(select(catalog_entry).where(catalog_entry.c.name == name))
            ).first()
        if row is None:
            raise NotFound(
                f"no entity named {name!r} in the catalog; query entityCatalog to list them"
            )
        return _entry(row)

    async def set_visible(self, name: str, visible: bool) -> CatalogEntry:
        entry = await self.entry(name)
        if visible and not entry.published:
            raise NotFound(f"entity {name} is no longer published by the F&O store")
        if entry.visible != visible:
            await self._set_visible(name, visible)
            try:
                await self._changed()
            except Exception:
                await self._set_visible(name, entry.visible)  # the schema could not take it
                raise
        return await self.entry(name)

    async def _set_visible(self, name: str, visible: bool) -> None:
        async with self._lock, self._control.begin() as conn:
            await conn.execute(
                update(catalog_entry).where(catalog_entry.c.name == name).values(visible=visible)
            )

    async def refresh(self, name: str) -> CatalogEntry:
        """Re-read the entity's definition from the F&O store into the catalog."""
        await self.entry(name)
        published = {e.name: e for e in await self._source.published_entities()}
        entity = published.get(name)
        async with self._lock, self._control.begin() as conn:
            if entity is None:
                values: dict[str, object] = {"published": False}
            else:
                values = {**_values(entity, dt.datetime.now(dt.UTC)), "published": True}
            await conn.execute(
                update(catalog_entry).where(catalog_entry.c.name == name).values(**values)
            )
        await self._changed()
        return await self.entry(name)

    async def resolved(self) -> ResolvedCatalog:
        """The visible, published entities as of their last refresh."""
        entries = await self.entries(visible=True)
        return resolve_catalog(e.metadata for e in entries if e.published)


def _values(entity: EntityMetadata, now: dt.datetime) -> dict[str, object]:
    return {
        "name": entity.name,
        "collection_name": entity.collection_name,
        "label": entity.label,
        "refresh_needed": False,
        "last_refreshed_at": now,
        "fingerprint": entity.fingerprint(),
        "snapshot": dumps(entity_to_dict(entity)),
    }


def _entry(row: object) -> CatalogEntry:
    refreshed: dt.datetime = row.last_refreshed_at  # type: ignore[attr-defined]
    if refreshed.tzinfo is None:
        refreshed = refreshed.replace(tzinfo=dt.UTC)
    return CatalogEntry(
        name=row.name,  # type: ignore[attr-defined]
        collection_name=row.collection_name,  # type: ignore[attr-defined]
        label=row.label,  # type: ignore[attr-defined]
        visible=row.visible,  # type: ignore[attr-defined]
        published=row.published,  # type: ignore[attr-defined]
        refresh_needed=row.refresh_needed,  # type: ignore[attr-defined]
        last_refreshed_at=refreshed,
        metadata=entity_from_dict(loads(row.snapshot)),  # type: ignore[attr-defined]
    )
