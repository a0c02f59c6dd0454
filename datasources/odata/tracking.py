"""What other clients write to an OData service, read from its change feed
(`Prefer: odata.track-changes` and delta links, as Dataverse's Web API offers them).

A delta link answers with the rows changed since it was handed out, whole, and the
ids of the rows deleted since: not what a changed row was, nor what a deleted one
held. So the feed keeps each tracked row as last seen (in the control store, beside
its link): a deleted row is still named by what it held (dual-write finds it on the
other side by its alternate key), and an update has the row as it was.

The gateway's own writes come back through the feed too. Each one keeps the row as
last seen, as the service answered the write (whichever replica made it), so when it
comes back it leaves the row as last seen: no change, and nothing is synced again, as
a SQL store's triggers leave the gateway's writes out of its change log. While a
write is under way its row is marked, and the feed waits for it (reading the same
link again next round), so that its answer is known before the row is compared. A
deleted row never seen (the gateway's own delete, or a row made and removed between
two reads) has nothing to sync either.

A link moves on only when the changes read through it are forgotten (handled), in
the transaction that keeps the rows as they are now: until then the same changes
are read again.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from datasources.base import Untracked
from datasources.odata.client import Json, ODataClient, dumps, loads
from datasources.odata.query import Renderer
from gateway.kernel.catalog import EntityMetadata, FieldType
from gateway.kernel.change import ChangeKind, TrackedChange

TRACK = {"Prefer": "odata.track-changes"}

_metadata = MetaData()
links = Table(
    "odata_change_link",
    _metadata,
    Column("service", String(500), primary_key=True),  # the service root
    Column("entity_set", String(200), primary_key=True),
    Column("link", Text, nullable=False),  # the delta link to read next
)
last_seen = Table(
    "odata_last_seen",
    _metadata,
    Column("service", String(500), primary_key=True),
    Column("entity_set", String(200), primary_key=True),
    Column("row_key", String(500), primary_key=True),
    Column("row", Text, nullable=False),  # as the service sent it, JSON
)
marks = Table(
    "odata_write_mark",
    _metadata,
    Column("service", String(500), primary_key=True),
    Column("entity_set", String(200), primary_key=True),
    Column("row_key", String(500), primary_key=True),
    Column("since", DateTime(timezone=True), nullable=False),
)
WRITE_MARK_SECONDS = 300  # a mark older than this was left by a replica that died
Wrote = Callable[[Sequence[tuple[Mapping[str, Any], Json | None]]], Awaitable[None]]
"""Takes the service's answers to a write, each row by its key (None: deleted)."""
_KEY_PART = re.compile(r"(?:(\w+)=)?('(?:[^']|'')*'|[^,']+)")


@dataclass
class _Batch:
    """What was read through a link and is not handled yet."""

    entity: EntityMetadata
    link: str  # the feed goes on from here once it is
    seen: dict[str, Json] = field(default_factory=dict)  # changed rows, by row key
    gone: list[str] = field(default_factory=list)  # deleted rows' keys
    changes: list[TrackedChange] = field(default_factory=list)  # others' changes


class ChangeFeed:
    def __init__(
        self,
        engine: AsyncEngine,
        client: ODataClient,
        root: str,
        scope: Callable[[EntityMetadata], dict[str, str]] = lambda _: {},
    ) -> None:
        """`scope`: the query options every read of an entity carries (F&O's
        `cross-company=true`)."""
        self._engine = engine
        self._client = client
        self._root = root
        self._scope = scope
        self._batches: dict[str, _Batch] = {}  # by entity set
        self._ids = itertools.count(1)

    async def ensure(self) -> None:
        async with self._engine.begin() as conn:
            await conn.run_sync(_metadata.create_all)

    async def track(self, entities: Sequence[EntityMetadata]) -> None:
        """Start reading the feed of each entity not tracked yet (a tracked one goes on
        from its link, whatever was written while the gateway was away)."""
        await self.ensure()
        known = await self._links()
        for entity in entities:
            if entity.collection_name not in known:
                rows, link = await self._read(
                    entity.collection_name, "tracking changes", self._scope(entity)
                )
                seen = {_row_key(entity, row): row for row in rows}
                async with self._engine.begin() as conn:
                    await self._keep(conn, _Batch(entity, link, seen))

    @asynccontextmanager
    async def writing(
        self, entity: EntityMetadata, keys: Sequence[Mapping[str, Any]]
    ) -> AsyncIterator[Wrote]:
        """Mark the rows while the gateway writes them (if the entity is tracked); what
        this yields takes the service's answers as the rows last seen."""
        name = entity.collection_name
        row_keys = [_key_text(entity, key) for key in keys]
        async with self._engine.begin() as conn:
            marked = await self._tracked(conn, name)
            if marked:
                await self._in_chunks(conn, marks, name, row_keys)
                await conn.execute(
                    insert(marks),
                    [
                        {"service": self._root, "entity_set": name, "row_key": k, "since": _now()}
                        for k in row_keys
                    ],
                )

        async def wrote(rows: Sequence[tuple[Mapping[str, Any], Json | None]]) -> None:
            nonlocal marked
            if not marked:
                return
            by_key = {_key_text(entity, key): row for key, row in rows}
            async with self._engine.begin() as conn:
                await self._forget_rows(conn, name, list(by_key))
                await self._remember(conn, name, {k: r for k, r in by_key.items() if r})
                await self._in_chunks(conn, marks, name, row_keys)
            marked = False

        try:
            yield wrote
        finally:
            if marked:  # the write failed: nothing to keep
                async with self._engine.begin() as conn:
                    await self._in_chunks(conn, marks, name, row_keys)

    async def _tracked(self, conn: AsyncConnection, name: str) -> bool:
        found = await conn.scalar(
            select(links.c.entity_set).where(
                links.c.service == self._root, links.c.entity_set == name
            )
        )
        return found is not None

    async def changes(self, r: Renderer, entities: Sequence[EntityMetadata]) -> list[TrackedChange]:
        """What others wrote to these entities since their links (changes not handled
        yet: again, as they were)."""
        stored = await self._links()
        found: list[TrackedChange] = []
        for entity in entities:
            name = entity.collection_name
            if name not in self._batches and name in stored:
                batch = await self._batch(r, entity, stored[name])
                if batch is None:
                    continue  # a write of the gateway's is under way: read again
                if not batch.changes:  # only the gateway's own writes: move on at once
                    if batch.seen or batch.gone or batch.link != stored[name]:
                        async with self._engine.begin() as conn:
                            await self._keep(conn, batch)
                    continue
                self._batches[name] = batch
            if name in self._batches:
                found += self._batches[name].changes
        return found

    async def forget(self, conn: AsyncConnection, ids: Sequence[int]) -> list[str]:
        """Move on past each batch whose changes were all handled, in `conn`'s
        transaction; the entity sets that moved on (call `moved` once it commits)."""
        handled = set(ids)
        done = [n for n, b in self._batches.items() if {c.id for c in b.changes} <= handled]
        for name in done:
            await self._keep(conn, self._batches[name])
        return done

    def moved(self, names: Sequence[str]) -> None:
        for name in names:
            self._batches.pop(name, None)

    # ---------------------------------------------------------------------------

    async def _links(self) -> dict[str, str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(links.c.entity_set, links.c.link).where(links.c.service == self._root)
            )
            return {str(name): str(link) for name, link in rows.all()}

    async def _read(
        self, url: str, doing: str, params: dict[str, str] | None = None
    ) -> tuple[list[Json], str]:
        """Every entry of a collection or a delta link, following next links; and the
        delta link of the last page."""
        url = urljoin(self._root, url)
        body = await self._client.get(url, params, headers=TRACK)
        entries: list[Json] = list(body.get("value") or [])
        while body.get("@odata.nextLink"):
            url = urljoin(url, str(body["@odata.nextLink"]))
            body = await self._client.get(url, headers=TRACK)
            entries.extend(body.get("value") or [])
        link = body.get("@odata.deltaLink")
        if not link:
            raise Untracked(
                f"the OData service sent no delta link {doing} ({url}): it does not track "
                "changes there, so what other clients write to it cannot be synced"
            )
        return entries, urljoin(url, str(link))

    async def _batch(self, r: Renderer, entity: EntityMetadata, link: str) -> _Batch | None:
        entries, following = await self._read(link, "answering a delta link")
        batch = _Batch(entity, following)
        now: dict[str, Json | None] = {}  # by row key: the row now (None: deleted)
        for entry in entries:
            context = str(entry.get("@odata.context", ""))
            if "@removed" in entry or context.endswith("$deletedEntity"):
                key = _key_text(entity, _parse_id(entity, str(entry.get("@id") or entry["id"])))
                batch.seen.pop(key, None)
                batch.gone.append(key)
                now[key] = None
            else:
                key = _row_key(entity, entry)
                batch.seen[key] = now[key] = entry
        if await self._being_written(entity, list(now)):
            return None
        befores = await self._last_seen(entity, list(now))
        names = [f.name for f in entity.fields]
        for key, row in now.items():
            before = befores.get(key)
            if row is None and before is None:
                continue  # never seen: nothing to sync
            if row is not None and before is not None and _same(before, row):
                continue  # as last seen (the gateway's own write, come back)
            kind = (
                ChangeKind.DELETE
                if row is None
                else ChangeKind.CREATE
                if before is None
                else ChangeKind.UPDATE
            )
            batch.changes.append(
                TrackedChange(
                    next(self._ids),
                    entity,
                    kind,
                    _key_values(r, entity, json.loads(key)),
                    None if before is None else r.row(entity, before, names),
                )
            )
        return batch

    async def _being_written(self, entity: EntityMetadata, keys: list[str]) -> bool:
        recent = _now() - dt.timedelta(seconds=WRITE_MARK_SECONDS)
        where = (
            marks.c.service == self._root,
            marks.c.entity_set == entity.collection_name,
            marks.c.since > recent,
        )
        async with self._engine.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                found = await conn.scalar(
                    select(marks.c.row_key).where(*where, marks.c.row_key.in_(chunk)).limit(1)
                )
                if found is not None:
                    return True
        return False

    async def _last_seen(self, entity: EntityMetadata, keys: list[str]) -> dict[str, Json]:
        where = (
            last_seen.c.service == self._root,
            last_seen.c.entity_set == entity.collection_name,
        )
        found: dict[str, Json] = {}
        async with self._engine.connect() as conn:
            for start in range(0, len(keys), 500):
                rows = await conn.execute(
                    select(last_seen.c.row_key, last_seen.c.row).where(
                        *where, last_seen.c.row_key.in_(keys[start : start + 500])
                    )
                )
                found.update((k, loads(v)) for k, v in rows.all())
        return found

    async def _keep(self, conn: AsyncConnection, batch: _Batch) -> None:
        """The link to read next, and the rows as they are now."""
        name = batch.entity.collection_name
        await conn.execute(
            delete(links).where(links.c.service == self._root, links.c.entity_set == name)
        )
        await conn.execute(
            insert(links).values(service=self._root, entity_set=name, link=batch.link)
        )
        await self._forget_rows(conn, name, [*batch.seen, *batch.gone])
        await self._remember(conn, name, batch.seen)

    async def _forget_rows(self, conn: AsyncConnection, name: str, keys: list[str]) -> None:
        await self._in_chunks(conn, last_seen, name, keys)

    async def _in_chunks(
        self, conn: AsyncConnection, table: Table, name: str, keys: list[str]
    ) -> None:
        """Delete these rows' entries from one of the feed's tables."""
        where = (table.c.service == self._root, table.c.entity_set == name)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            await conn.execute(delete(table).where(*where, table.c.row_key.in_(chunk)))

    async def _remember(self, conn: AsyncConnection, name: str, rows: dict[str, Json]) -> None:
        if rows:
            await conn.execute(
                insert(last_seen),
                [
                    {"service": self._root, "entity_set": name, "row_key": k, "row": dumps(v)}
                    for k, v in rows.items()
                ],
            )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _same(before: Json, now: Json) -> bool:
    """Whether a row is as last seen: the same ETag, or (with none) the same values."""
    tag = before.get("@odata.etag")
    if tag is not None and now.get("@odata.etag") is not None:
        return bool(tag == now["@odata.etag"])
    return {k: v for k, v in before.items() if not k.startswith("@")} == {
        k: v for k, v in now.items() if not k.startswith("@")
    }


def _row_key(entity: EntityMetadata, row: Mapping[str, Any]) -> str:
    return _key_text(entity, {f.name: row.get(f.name) for f in entity.key})


def _key_text(entity: EntityMetadata, key: Mapping[str, Any]) -> str:
    """A row's key as text, the same however it was found (a row, an entity id)."""
    return json.dumps([str(key[f.name]) for f in entity.key])


def _key_values(r: Renderer, entity: EntityMetadata, texts: list[str]) -> dict[str, Any]:
    key: dict[str, Any] = {}
    for spec, text in zip(entity.key, texts, strict=True):
        numeric = spec.type in (FieldType.INT, FieldType.INT64)
        key[spec.name] = int(text) if numeric else r.value(spec, text)
    return key


def _parse_id(entity: EntityMetadata, entity_id: str) -> dict[str, Any]:
    """The key in an entity id: `…/accounts(3f25…)`, `CustomersV3(dataAreaId='usmf',
    CustomerAccount='US-001')`, or Dataverse's bare row id."""
    inside = entity_id.rsplit("(", 1)[1][:-1] if entity_id.endswith(")") else entity_id
    parts = [m.groups() for m in _KEY_PART.finditer(inside)]
    if len(parts) == 1 and parts[0][0] is None:
        return {entity.key[0].name: _unquote(parts[0][1])}
    return {name: _unquote(value) for name, value in parts}


def _unquote(value: str) -> str:
    if value.startswith("'") and value.endswith("'"):
        return value[1:-1].replace("''", "'")
    return value
