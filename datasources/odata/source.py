"""`ODataSource`: an F&O environment's `/data` endpoint (or any OData v4 service) as a
datasource, read and written through without copying.

A read plan becomes one request: its relations ride along as `$expand` (as deep as
the dialect allows: F&O expands one level) with each parent's page cut by the
service; relations beyond are fetched one request per level for every parent at once
(parent keys as an or-chain), whole, and paged per parent here.

An OData service has no transaction that spans requests and no outbox: a unit applies
each change when it is given, and undoes what it applied if the unit fails before
its end (so a dual-write whose other side refuses leaves this one as it was); the
events a change raises are kept in an outbox of the gateway's own (the control
store) once the unit ends. What other clients write is read from the service's
change feed where it has one (`tracking`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode, urljoin

import httpx
import orjson
from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.base import Untracked
from datasources.odata.batch import Part
from datasources.odata.client import Json, ODataClient, loads, words
from datasources.odata.csdl import Service, read_metadata
from datasources.odata.endpoint import Dialect, Endpoint
from datasources.odata.query import TRUE, Renderer, all_of, any_of
from datasources.odata.tracking import ChangeFeed, Wrote
from datasources.sql import outbox
from gateway.kernel.catalog import Cardinality, EntityMetadata
from gateway.kernel.change import Change, ChangeKind, TrackedChange
from gateway.kernel.errors import BadUserInput, GatewayError, NotFound
from gateway.kernel.layout import lay_out
from gateway.kernel.plan import (
    ETAG_SLOT,
    And,
    ChildPlan,
    Compare,
    Connection,
    Filter,
    Not,
    Or,
    QueryPlan,
    RelationFilter,
    Row,
    Slot,
    child_slot,
    page_of,
)
from gateway.kernel.shape import Shape

log = logging.getLogger(__name__)
Key = tuple[Any, ...]
KEYS_PER_REQUEST = 40  # parent keys in one or-chain: the URL stays well under 8 KB
BATCH_SIZE = 100  # requests in one `$batch` (Dataverse takes up to 1,000)
_RETURN = {"Prefer": "return=representation"}
_EXPAND_DEPTH = {Dialect.FNO: 1, Dialect.STANDARD: 3}


class ODataSource:
    def __init__(
        self,
        endpoint: Endpoint,
        control: AsyncEngine | None = None,
        raises_events: bool = True,
        client: ODataClient | None = None,
    ) -> None:
        """`control`: the gateway's own store, where the events of changes made here
        wait for the relay (if the store `raises_events`) and where the change feed
        keeps its place; without it, changes raise no events and none are tracked."""
        self.endpoint = endpoint
        self.client = client or ODataClient(endpoint)
        self.expand_depth = _EXPAND_DEPTH[endpoint.dialect]
        self._events = control if raises_events else None
        self._control = control
        self.feed = (
            None if control is None else ChangeFeed(control, self.client, endpoint.root, self.scope)
        )
        self._service: Service | None = None
        self._loading = asyncio.Lock()
        self._companies: TTLCache[str, list[str]] = TTLCache(maxsize=1, ttl=60)

    async def service(self) -> Service:
        if self._service is None:
            async with self._loading:
                if self._service is None:
                    self._service = read_metadata(await self.client.metadata())
        return self._service

    async def renderer(self) -> Renderer:
        return Renderer(await self.service(), self.endpoint.dialect)

    async def published_entities(self) -> list[EntityMetadata]:
        """What `$metadata` says now (read again: this is how the catalog refreshes)."""
        self._service = read_metadata(await self.client.metadata())
        return list(self._service.entities)

    async def companies(self) -> list[str]:
        """The legal entities, from the `LegalEntities` set (kept a minute)."""
        cached = self._companies.get("all")
        if cached is not None:
            return cached
        service = await self.service()
        legal = next((e for e in service.entities if e.collection_name == "LegalEntities"), None)
        found: list[str] = []
        if legal is not None and legal.has_field("LegalEntityId"):
            rows = await self._all(legal.collection_name, {"$select": "LegalEntityId"})
            found = sorted(str(r["LegalEntityId"]).lower() for r in rows)
        self._companies["all"] = found
        return found

    async def ping(self) -> None:
        """Raise unless the service answers (its service document: small, unlike
        `$metadata`)."""
        await self.client.get("")

    async def outbox_depth(self) -> int:
        """Events of changes made here, not yet taken into the event log."""
        if self._events is None:
            return 0
        async with self._events.connect() as conn:
            return await outbox.depth(conn)

    async def close(self) -> None:
        await self.client.close()

    # reads -------------------------------------------------------------------------

    async def fetch(self, plan: QueryPlan) -> Connection:
        r = await self.renderer()
        expanded = self._expandable(plan, 1)
        params = self._options(r, plan, expanded, 1)
        company = None
        if plan.company is not None:
            company = r.equal(plan.entity, "dataAreaId", plan.company)
            params["$filter"] = all_of([company, params.get("$filter")])
        params.update(self.scope(plan.entity))
        needed = None if plan.page is None else plan.page.limit + 1
        if plan.total and plan.page is not None and plan.page.has_cursor:
            # the count is of every row matching, not only of those past the cursor
            where = all_of([company, r.where(plan.entity, plan.where)])
            count = {"$filter": where, "$top": "0", "$count": "true", **self.scope(plan.entity)}
            (raw, _), counted = await asyncio.gather(
                self._rows(plan.entity.collection_name, params, needed),
                self.client.get(plan.entity.collection_name, _clean(count)),
            )
            total: int | None = int(counted.get("@odata.count") or 0)
        else:
            raw, total = await self._rows(plan.entity.collection_name, params, needed)
        rows = [self._convert(r, plan, found, expanded, 1) for found in raw]
        page = (
            Connection(rows, plan.order, total=total)
            if plan.page is None
            else (page_of(rows, plan, total))
        )
        await self._levels(r, plan, page.rows, expanded, 1)  # for the rows kept only
        return page

    def _expandable(self, plan: QueryPlan, level: int) -> list[ChildPlan]:
        """The children fetched inside their parents' request, at this level below the
        root: one per relation (OData expands a navigation once per request), as deep
        as the dialect allows."""
        if level > self.expand_depth:
            return []
        chosen: dict[str, ChildPlan] = {}
        for child in plan.children:
            chosen.setdefault(child.relation.name, child)
        return list(chosen.values())

    def _options(
        self, r: Renderer, plan: QueryPlan, expanded: Sequence[ChildPlan], level: int
    ) -> dict[str, str]:
        """The query options of a plan; `expanded` are its children (at `level`) that
        ride along."""
        entity = plan.entity
        columns = dict.fromkeys([*(f.name for f in entity.key), *plan.required_columns()])
        params = {"$select": ",".join(columns)}
        where = r.where(entity, plan.where)
        order = plan.order
        page = plan.page
        if page is not None:
            if page.backwards:
                order = tuple(term.reversed() for term in order)
            boundary = page.before if page.backwards else page.after
            if boundary is not None:
                where = all_of([where, r.after(entity, order, boundary)])
            params["$top"] = str(page.limit + 1)
        if where != TRUE:
            params["$filter"] = where
        if order:
            params["$orderby"] = r.order(entity, order)
        if plan.total and (page is None or not page.has_cursor):
            params["$count"] = "true"
        if expanded:
            params["$expand"] = ",".join(self._expand(r, c, level) for c in expanded)
        return params

    def _expand(self, r: Renderer, child: ChildPlan, level: int) -> str:
        if child.plan.total and child.plan.page is not None and child.plan.page.has_cursor:
            raise BadUserInput(
                f"the totalCount of {child.key} past a cursor is not available from an "
                "OData store; ask for it on the first page"
            )
        deeper = self._expandable(child.plan, level + 1)
        options = self._options(r, child.plan, deeper, level + 1)
        if child.relation.cardinality is Cardinality.ONE:  # one row: nothing to order
            options.pop("$orderby", None)
        return f"{child.relation.name}({';'.join(f'{k}={v}' for k, v in options.items())})"

    def _convert(
        self, r: Renderer, plan: QueryPlan, found: Json, expanded: Sequence[ChildPlan], level: int
    ) -> Row:
        row = _with_etag(plan.entity, r.row(plan.entity, found, plan.required_columns()), found)
        for child in expanded:
            slot = child_slot(child.key)
            value = found.get(child.relation.name)
            deeper = self._expandable(child.plan, level + 1)
            if child.relation.cardinality is Cardinality.ONE:
                converted = value and self._convert(r, child.plan, value, deeper, level + 1)
                row[slot] = converted or None
                continue
            page = child.plan.page
            assert page is not None
            rows = [self._convert(r, child.plan, item, deeper, level + 1) for item in value or []]
            total = found.get(f"{child.relation.name}@odata.count")
            row[slot] = page_of(rows, child.plan, None if total is None else int(total))
        return row

    async def _levels(
        self,
        r: Renderer,
        plan: QueryPlan,
        rows: list[Row],
        expanded: Sequence[ChildPlan],
        level: int,
    ) -> None:
        """Fetch the relations that did not ride along, level by level, for all parents
        at once; and look below those that did."""
        for child in plan.children:
            if not rows:
                return
            if child in expanded:
                below = self._expandable(child.plan, level + 1)
                found = _rows_in(rows, child_slot(child.key))
                await self._levels(r, child.plan, found, below, level + 1)
            else:
                fetched = await self._child(r, child, rows)
                await self._levels(r, child.plan, fetched, [], level + 1)

    async def _child(self, r: Renderer, child: ChildPlan, parents: list[Row]) -> list[Row]:
        """One relation for every parent, in as few requests as the URL length allows;
        each parent's page is cut from the whole of its rows."""
        plan = child.plan
        page = plan.page
        if page is not None and page.has_cursor:
            raise BadUserInput(
                f"{child.key} cannot be read past a cursor this deep in an OData store "
                f"(it expands {self.expand_depth} level(s)); query it from its own root field"
            )
        sources = [s for s, _ in child.relation.constraints]
        targets = [t for _, t in child.relation.constraints]
        keys = sorted(
            {k for k in (tuple(p[s] for s in sources) for p in parents) if None not in k},
            key=repr,
        )
        target = plan.entity
        grouped: dict[Key, list[Row]] = defaultdict(list)
        columns = dict.fromkeys([*targets, *plan.required_columns()])
        base = self._options(r, plan, [], 0)
        base.pop("$top", None)
        base.pop("$count", None)
        base["$select"] = ",".join(dict.fromkeys([*base["$select"].split(","), *columns]))
        batches = [keys[i : i + KEYS_PER_REQUEST] for i in range(0, len(keys), KEYS_PER_REQUEST)]

        async def batch(chunk: list[Key]) -> list[Json]:
            match = any_of(
                all_of(r.equal(target, t, v) for t, v in zip(targets, key, strict=True))
                for key in chunk
            )
            params = {**base, "$filter": all_of([match, base.get("$filter")])}
            params.update(self.scope(target))
            found, _ = await self._rows(target.collection_name, params, None)
            return found

        for found in await asyncio.gather(*(batch(chunk) for chunk in batches)):
            for item in found:
                row = _with_etag(target, r.row(target, item, list(columns)), item)
                grouped[tuple(row[t] for t in targets)].append(row)

        if child.relation.cardinality is Cardinality.ONE:
            for parent in parents:
                matched = grouped.get(tuple(parent[s] for s in sources))
                parent[child_slot(child.key)] = matched[0] if matched else None
            return [rows[0] for rows in grouped.values()]
        assert page is not None
        pages: dict[Key, Connection] = {}
        for parent in parents:
            key = tuple(parent[s] for s in sources)
            if key not in pages:
                rows = list(grouped.get(key, []))
                total = len(rows) if plan.total else None
                pages[key] = page_of(rows, plan, total)
            parent[child_slot(child.key)] = pages[key]
        return [row for found in pages.values() for row in found.rows]

    async def _rows(
        self, collection: str, params: Mapping[str, str], needed: int | None
    ) -> tuple[list[Json], int | None]:
        """Rows of a collection, following the service's next links until `needed`
        rows are in (all of them when None); and `@odata.count` if asked for."""
        body = await self.client.get(collection, _clean(params))
        rows: list[Json] = list(body.get("value") or [])
        total = body.get("@odata.count")
        url = self.endpoint.root + collection
        while body.get("@odata.nextLink") and (needed is None or len(rows) < needed):
            url = urljoin(url, str(body["@odata.nextLink"]))
            body = await self.client.get(url)
            rows.extend(body.get("value") or [])
        return rows, None if total is None else int(total)

    async def _all(self, collection: str, params: Mapping[str, str]) -> list[Json]:
        return (await self._rows(collection, params, None))[0]

    def scope(self, entity: EntityMetadata) -> dict[str, str]:
        """The options every request for the entity carries. F&O answers for the user's
        default company unless told otherwise; the gateway always names the company in
        its filter, so it reads across them."""
        if self.endpoint.dialect is Dialect.FNO and entity.company_scoped:
            return {"cross-company": "true"}
        return {}

    # the fast read path: rows laid out as the response, without resolution ---------

    def prepare_json(self, reads: Sequence[tuple[QueryPlan, Shape]]) -> object | None:
        """The reads themselves: each is fetched as on the generic path and laid out by
        its shape. A plan holding a query variable as a slot is made again with its
        value (the URL has it); before `$metadata` is read, the generic path reads it."""
        if self._service is None:
            return None
        for plan, _ in reads:
            if _holds_slot(plan):
                raise TypeError("an OData request carries every value: no slots")
        return tuple(reads)

    async def fetch_json(
        self, prepared: object, arguments: Mapping[str, Any]
    ) -> list[str | None] | None:
        """Each read's response, or None if a company asked for is unknown (the generic
        path says so)."""
        reads = cast(tuple[tuple[QueryPlan, Shape], ...], prepared)
        asked = {plan.company for plan, _ in reads if plan.company is not None}
        if asked and not asked <= set(await self.companies()):
            return None
        pages = await asyncio.gather(*(self.fetch(plan) for plan, _ in reads))
        return [
            orjson.dumps(lay_out(plan, shape, page)).decode()
            for (plan, shape), page in zip(reads, pages, strict=True)
        ]

    # writes ------------------------------------------------------------------------

    async def write(
        self,
        entity: EntityMetadata,
        targets: Mapping[str, EntityMetadata],
        change: Change,
        values: Mapping[str, Any],
    ) -> tuple[Row | None, Row | None]:
        async with self.unit() as unit:
            return await unit.apply(entity, targets, change, values)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[ODataUnit]:
        unit = ODataUnit(self, await self.renderer())
        try:
            yield unit
        except BaseException:
            await unit.undo()
            raise
        if unit.events and self._events is not None:
            async with self._events.begin() as conn:
                await outbox.add(conn, unit.events)

    async def read_row(
        self, entity: EntityMetadata, key: Mapping[str, Any]
    ) -> tuple[Row | None, str]:
        """The row with this key (its primary key, or another that names one row, such as
        a dual-write map's) as it is now, and its ETag (`*` if the service sends none)."""
        found = await self.row_json(entity, key)
        if found is None:
            return None, "*"
        names = [f.name for f in entity.fields]
        return (await self.renderer()).row(entity, found, names), _etag_of(found)

    async def row_json(self, entity: EntityMetadata, key: Mapping[str, Any]) -> Json | None:
        """The row as the service sends it (its ETag as `@odata.etag`), or None."""
        r = await self.renderer()
        params = self.scope(entity)
        if set(key) != {f.name for f in entity.key}:
            params["$filter"] = all_of(r.equal(entity, n, v) for n, v in key.items())
            found, _ = await self._rows(entity.collection_name, {**params, "$top": "1"}, 1)
            return found[0] if found else None
        response = await self.client.send(
            "GET", r.key_path(entity, key), params=params, idempotent=True
        )
        return None if response.status_code == 404 else _tagged(response)

    @asynccontextmanager
    async def writing(
        self, entity: EntityMetadata, keys: Sequence[Mapping[str, Any]]
    ) -> AsyncIterator[Wrote]:
        """While the gateway writes these rows; what it yields takes the service's
        answers, so that the change feed does not hand them back as another client's
        writes (see `tracking`)."""
        if self.feed is None:
            yield _ignore
            return
        async with self.feed.writing(entity, keys) as wrote:
            yield wrote

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[ODataSource]:
        """Reads as they are now: an OData service cannot keep rows from other writers.
        A copy still reads its rows again before it commits, and starts over if they
        moved (see the tracker)."""
        yield self

    # events and change tracking ------------------------------------------------------

    async def prepare_outbox(self) -> None:
        """The control store's tables for this store's events and change feed."""
        if self._events is not None:
            async with self._events.begin() as conn:
                await outbox.ensure(conn)
        if self.feed is not None:
            await self.feed.ensure()

    def watch_events(self, wake: Callable[[], None]) -> None:
        """The relay looks periodically; the unit wakes it after each write anyway."""

    async def take_events(self, limit: int) -> list[dict[str, Any]]:
        if self._events is None:
            return []
        async with self._events.connect() as conn:
            return await outbox.take(conn, limit)

    async def forget_events(self, ids: Sequence[int]) -> None:
        if self._events is not None:
            async with self._events.begin() as conn:
                await outbox.forget(conn, ids)

    async def track(self, entities: Sequence[EntityMetadata]) -> None:
        """Follow the service's change feed for these entities (refused by a service
        without one, such as F&O's `/data`)."""
        if self.feed is None:
            raise Untracked("tracking an OData store's changes needs the control store")
        await self.feed.track(entities)

    async def changes(self, entities: Sequence[EntityMetadata], limit: int) -> list[TrackedChange]:
        """The feed's changes, a delta link's worth per entity (`limit` does not apply:
        the service pages what a link answers, and all of it is read)."""
        if self.feed is None:
            return []
        return await self.feed.changes(await self.renderer(), entities)

    async def forget(self, ids: Sequence[int], events: Sequence[Mapping[str, Any]] = ()) -> None:
        if self._control is None:
            return
        async with self._control.begin() as conn:
            moved = await self.feed.forget(conn, ids) if self.feed is not None else []
            if events and self._events is not None:
                await outbox.add(conn, events)
        if self.feed is not None:
            self.feed.moved(moved)


class ODataUnit:
    """Changes applied one request each, as they are given, and undone newest first if
    the unit fails (see the module's note)."""

    def __init__(self, source: ODataSource, renderer: Renderer) -> None:
        self._source = source
        self._r = renderer
        self.events: list[dict[str, Any]] = []
        self._done: list[_Done] = []

    async def apply(
        self,
        entity: EntityMetadata,
        targets: Mapping[str, EntityMetadata],
        change: Change,
        values: Mapping[str, Any],
        read_back: bool = True,
    ) -> tuple[Row | None, Row | None]:
        """Apply the change; the row comes back as the service now holds it (what it
        computed or defaulted included), whatever `read_back` says."""
        if change.expected_version is not None:
            raise BadUserInput(
                f"{entity.name} rows carry the service's ETags, not versions: pass the etag "
                "you read as ifMatch instead of expectedVersion"
            )
        r, key = self._r, dict(change.key)
        if change.kind is ChangeKind.CREATE:
            body = r.payload(entity, {**key, **values})
            after, etag = await self._write(entity, key, "POST", entity.collection_name, body)
            self._done.append(_Done(entity, ChangeKind.CREATE, key, None, etag))
            return None, after
        before, etag = await self._source.read_row(entity, key)
        if before is None:
            raise NotFound(f"there is no {entity.name} {_describe(key)}")
        etag = change.if_match or etag  # the version the writer read, if it says
        key = {f.name: before[f.name] for f in entity.key}  # named by another key, maybe
        path = r.key_path(entity, key)
        if change.kind is ChangeKind.DELETE:
            await self._delete(entity, key, path, etag)
            self._done.append(_Done(entity, ChangeKind.DELETE, key, before, None))
            return before, None
        body = r.payload(entity, values)
        after, etag = await self._write(entity, key, "PATCH", path, body, etag)
        self._done.append(_Done(entity, ChangeKind.UPDATE, key, before, etag, tuple(values)))
        return before, after

    def plain_update(
        self, entity: EntityMetadata, targets: Mapping[str, EntityMetadata], change: Change
    ) -> bool:
        """Never: an update here always reads the row first (for its ETag)."""
        return False

    async def find(self, entity: EntityMetadata, key: Mapping[str, Any]) -> Row | None:
        """The row with these field values (a key, or an alternate key), if there is one."""
        return (await self._source.read_row(entity, key))[0]

    async def rows(
        self, entity: EntityMetadata, key: Sequence[str], values: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], Row]:
        """The rows whose `key` fields hold these values, by those values."""
        names = [f.name for f in entity.fields]
        found = await self._found(entity, key, values)
        return {k: self._r.row(entity, item, names) for k, item in found.items()}

    async def upsert_many(
        self,
        entity: EntityMetadata,
        targets: Mapping[str, EntityMetadata],
        key: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        new_row: Callable[[], Mapping[str, Any]] = dict,
    ) -> dict[int, str]:
        """Create the rows whose `key` is new (with what `new_row` adds, such as a row
        id) and update the others (If-Match: the ETag just read), in `$batch`es of
        requests each answered on its own; the refused rows' problems by position (the
        rest are written)."""
        r = self._r
        existing = await self._found(entity, key, [tuple(row[n] for n in key) for row in rows])
        primary = [f.name for f in entity.key]
        query = urlencode(self._source.scope(entity))
        planned: list[_Planned] = []
        for at, row in enumerate(rows):
            found = existing.get(tuple(row[n] for n in key))
            if found is None:
                whole = {**new_row(), **row}
                names = {n: whole[n] for n in primary}
                body = r.payload(entity, whole)
                part = Part("POST", _with(entity.collection_name, query), body, _RETURN)
            else:
                names = {n: r.value(entity.field(n), found.get(n)) for n in primary}
                body = r.payload(entity, {n: v for n, v in row.items() if n not in names})
                headers = {**_RETURN, "If-Match": _etag_of(found)}
                part = Part("PATCH", _with(r.key_path(entity, names), query), body, headers)
            planned.append(_Planned(at, names, part, found))
        refused: dict[int, str] = {}
        for start in range(0, len(planned), BATCH_SIZE):
            chunk = planned[start : start + BATCH_SIZE]
            async with self._source.writing(entity, [p.key for p in chunk]) as wrote:
                answers = await self._source.client.batch([p.request for p in chunk])
                written: list[tuple[Mapping[str, Any], Json | None]] = []
                for plan, answer in zip(chunk, answers, strict=True):
                    if not answer.ok:
                        refused[plan.at] = words(answer.body) or f"answered {answer.status}"
                        continue
                    answered = answer.body
                    if answered is not None and "etag" in answer.headers:
                        answered.setdefault("@odata.etag", answer.headers["etag"])
                    written.append((plan.key, answered))
                    self._done.append(plan.done(entity, r, answered))
                await wrote(written)
        return refused

    async def _found(
        self, entity: EntityMetadata, key: Sequence[str], values: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], Json]:
        """The rows whose `key` fields hold these values, as the service sends them, by
        those values: an or-chain of keys a request."""
        r = self._r
        wanted = list(dict.fromkeys(values))
        chunks = [wanted[i : i + KEYS_PER_REQUEST] for i in range(0, len(wanted), KEYS_PER_REQUEST)]

        async def chunk(part: list[tuple[Any, ...]]) -> list[Json]:
            match = any_of(
                all_of(r.equal(entity, n, v) for n, v in zip(key, k, strict=True)) for k in part
            )
            params = {"$filter": match, **self._source.scope(entity)}
            return (await self._source._rows(entity.collection_name, params, None))[0]

        found: dict[tuple[Any, ...], Json] = {}
        for items in await asyncio.gather(*(chunk(c) for c in chunks)):
            for item in items:
                found[tuple(r.value(entity.field(n), item.get(n)) for n in key)] = item
        return found

    async def raise_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.events.extend(dict(e) for e in events)

    async def undo(self) -> None:
        """Put back what this unit applied, newest first. A row someone changed since
        (its ETag moved on) is left as they made it, and the log says so."""
        while self._done:
            done = self._done.pop()
            entity, r = done.entity, self._r
            path = r.key_path(entity, done.key)
            try:
                if done.kind is ChangeKind.CREATE:
                    await self._delete(entity, done.key, path, done.etag or "*")
                elif done.kind is ChangeKind.UPDATE:
                    assert done.before is not None
                    body = r.payload(entity, {n: done.before[n] for n in done.fields})
                    await self._write(entity, done.key, "PATCH", path, body, done.etag or "*")
                else:
                    assert done.before is not None
                    kept = {n: v for n, v in done.before.items() if not entity.field(n).read_only}
                    body = r.payload(entity, kept)
                    await self._write(entity, done.key, "POST", entity.collection_name, body)
            except GatewayError as exc:
                log.error(
                    "could not undo a %s of %s %s in the OData store: %s",
                    done.kind.value,
                    entity.name,
                    _describe(done.key),
                    exc.message,
                )

    # ---------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        entity: EntityMetadata,
        path: str,
        body: Json | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return await self._source.client.send(
            method, path, params=self._source.scope(entity), body=body, headers=headers
        )

    async def _delete(
        self, entity: EntityMetadata, key: Mapping[str, Any], path: str, etag: str
    ) -> None:
        async with self._source.writing(entity, [key]) as wrote:
            await self._send("DELETE", entity, path, headers={"If-Match": etag})
            await wrote([(key, None)])

    async def _write(
        self,
        entity: EntityMetadata,
        key: Mapping[str, Any],
        method: str,
        path: str,
        body: Json,
        etag: str | None = None,
    ) -> tuple[Row | None, str | None]:
        """POST or PATCH asking for the row back; (the row, its ETag). A service that
        answers without the row is asked for it."""
        headers = {"Prefer": "return=representation", **({"If-Match": etag} if etag else {})}
        async with self._source.writing(entity, [key]) as wrote:
            response = await self._send(method, entity, path, body, headers)
            if response.status_code == 204 or not response.content:
                found = await self._source.row_json(entity, key)
            else:
                found = _tagged(response)
            await wrote([(key, found)])
        if found is None:
            return None, None
        return self._r.row(entity, found, [f.name for f in entity.fields]), _etag_of(found)


@dataclass(frozen=True)
class _Done:
    """A change a unit applied, with what it takes to undo it."""

    entity: EntityMetadata
    kind: ChangeKind
    key: dict[str, Any]
    before: Row | None
    etag: str | None  # the row's ETag after the change
    fields: tuple[str, ...] = ()  # an update's


def _clean(params: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if not (k == "$filter" and v == TRUE)}


@dataclass(frozen=True)
class _Planned:
    """One row of a bulk upsert: its request, and the row as it was (None: new)."""

    at: int  # its position
    key: dict[str, Any]
    request: Part
    found: Json | None

    def done(self, entity: EntityMetadata, r: Renderer, row: Json | None) -> _Done:
        etag = None if row is None else row.get("@odata.etag")
        if self.found is None:
            return _Done(entity, ChangeKind.CREATE, self.key, None, etag)
        before = r.row(entity, self.found, [f.name for f in entity.fields])
        fields = tuple(self.request.body or ())
        return _Done(entity, ChangeKind.UPDATE, self.key, before, etag, fields)


def _with(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


async def _ignore(rows: Sequence[tuple[Mapping[str, Any], Json | None]]) -> None:
    """What an untracked store does with a write's answers."""


def _tagged(response: httpx.Response) -> Json:
    """A row the service sent, with its ETag (from the header, if the body has none)."""
    found = loads(response)
    if "@odata.etag" not in found and response.headers.get("etag"):
        found["@odata.etag"] = response.headers["etag"]
    return found


def _etag_of(found: Json) -> str:
    return str(found.get("@odata.etag") or "*")


def _holds_slot(plan: QueryPlan) -> bool:
    def walk(where: Filter | None) -> bool:
        match where:
            case Compare():
                return isinstance(where.value, Slot) or (
                    isinstance(where.value, list | tuple)
                    and any(isinstance(v, Slot) for v in where.value)
                )
            case And() | Or():
                return any(walk(item) for item in where.items)
            case Not():
                return walk(where.item)
            case RelationFilter():
                return walk(where.where)
        return False

    return walk(plan.where) or any(_holds_slot(child.plan) for child in plan.children)


def _with_etag(entity: EntityMetadata, row: Row, found: Json) -> Row:
    if entity.etag:
        row[ETAG_SLOT] = found.get("@odata.etag")
    return row


def _rows_in(parents: list[Row], slot: str) -> list[Row]:
    found: list[Row] = []
    for parent in parents:
        value = parent.get(slot)
        if isinstance(value, Connection):
            found.extend(value.rows)
        elif isinstance(value, dict):
            found.append(value)
    return found


def _describe(key: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in key.items())
