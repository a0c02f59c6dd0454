"""Initial sync: copy the rows that exist already, before live sync carries the rest.

A durable job per run: the maps to initialize in dependency order, each per legal
entity, read in key order in batches. After each batch the position (the last key
copied) is saved, so a job cut short resumes with the next batch, not from the
start. A row the target refuses is logged with the target's message and skipped;
retrying the log copies only those rows again. No row limit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, suppress
from typing import Any

from sqlalchemy import (
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from datasources.base import DataSource, Reader
from gateway import jobs
from gateway.dualwrite import lookups
from gateway.dualwrite.lookups import needs_lookups
from gateway.dualwrite.service import DualWriteService, record
from gateway.dualwrite.tables import progress, sync_error
from gateway.events.log import raise_control_event
from gateway.events.raising import outbox_rows
from gateway.feed import Notifier
from gateway.kernel.catalog import EntityMetadata
from gateway.kernel.change import ChangeKind, CreateCheck
from gateway.kernel.dualwrite import (
    Carrier,
    DualWriteMap,
    MapState,
    Master,
    Side,
    in_scope,
    key_on,
)
from gateway.kernel.errors import GatewayError
from gateway.kernel.events import BY_ID
from gateway.kernel.json import dumps, loads, plain
from gateway.kernel.plan import And, Compare, Connection, Op, OrderTerm, PageRequest, QueryPlan

JOB_KIND = "initial-sync"
BATCH = 5000


def source_side(m: DualWriteMap, master: Master) -> Side:
    """Rows are copied from the master, unless the map carries nothing from it."""
    preferred = Side.DATAVERSE if master is Master.DATAVERSE else Side.FNO
    if any(f.direction.reaches(preferred.other) for f in m.fields):
        return preferred
    return preferred.other


class InitialSync:
    def __init__(
        self,
        control: AsyncEngine,
        dualwrite: DualWriteService,
        notifier: Notifier,
        wake: Callable[[], None],
        batch: int = BATCH,
    ) -> None:
        self._control = control
        self._dualwrite = dualwrite
        self._notifier = notifier
        self._wake = wake
        self._batch = batch
        self._ahead: tuple[tuple[Any, ...], asyncio.Task[Connection]] | None = None

    async def plan(
        self,
        conn: AsyncConnection,
        environment: str,
        run: str,
        maps: list[DualWriteMap],
        master: Master,
    ) -> None:
        """Plan the copy of each map (per legal entity) and submit the job, in the
        transaction that starts the run."""
        companies = [c.lower() for c in await self._dualwrite.store(Side.FNO).companies()]
        now = dt.datetime.now(dt.UTC)
        for position, m in enumerate(maps):
            await conn.execute(
                delete(progress).where(
                    progress.c.environment == environment, progress.c.map == m.name
                )
            )
            for company in companies if m.company_specific else [""]:
                await conn.execute(
                    insert(progress).values(
                        environment=environment,
                        map=m.name,
                        company=company,
                        run=run,
                        position=position,
                        source=source_side(m, master).value,
                        after=None,
                        copied=0,
                        failed=0,
                        done=False,
                        updated_at=now,
                    )
                )
        await jobs.submit(conn, JOB_KIND, f"{environment}/{run}")
        self._wake()

    async def step(self, key: str) -> bool:
        """Copy one batch; True while batches remain."""
        environment, _, run = key.partition("/")
        row = await self._next(environment, run)
        if row is None:
            return False
        definition = await self._dualwrite.definition(row.map)
        source = Side(row.source)
        copied, failed, after, more = await self._batch_of(
            definition, source, row.company, loads(row.after) if row.after else None
        )
        async with self._control.begin() as conn:
            await conn.execute(
                update(progress)
                .where(
                    progress.c.environment == environment,
                    progress.c.map == row.map,
                    progress.c.company == row.company,
                )
                .values(
                    after=dumps(after) if after is not None else row.after,
                    copied=progress.c.copied + copied,
                    failed=progress.c.failed + len(failed),
                    done=not more,
                    updated_at=dt.datetime.now(dt.UTC),
                )
            )
            await log_refused(conn, environment, row.map, row.company, source, failed)
            if not more:
                done = (
                    await conn.execute(
                        select(progress.c.copied, progress.c.failed).where(
                            progress.c.environment == environment,
                            progress.c.map == row.map,
                            progress.c.company == row.company,
                        )
                    )
                ).one()
                where = f" of {row.company.upper()}" if row.company else ""
                await record(
                    conn,
                    environment,
                    row.map,
                    "INITIAL_SYNC",
                    f"initial sync{where} from {source.label} done: {done.copied} copied, "
                    f"{done.failed} refused",
                )
            if not more and await self._finished(conn, environment, row.map):
                await self._dualwrite.set_state_in(conn, [row.map], MapState.RUNNING)
        if not more:
            await self._dualwrite.refresh()
            await self._read_next(environment, run)
        if failed:
            await self._dualwrite.check_alerts(row.map)
        self._notifier.notify()
        return True

    async def give_up(self, key: str, message: str) -> None:
        """The copy keeps failing (a store unreachable, a table gone): its maps go to Error."""
        environment, _, run = key.partition("/")
        async with self._control.connect() as conn:
            names = set(
                (
                    await conn.execute(
                        select(progress.c.map).where(
                            progress.c.environment == environment, progress.c.run == run
                        )
                    )
                ).scalars()
            )
        starting = [
            v.definition.name
            for v in await self._dualwrite.maps()
            if v.definition.name in names and v.state is MapState.INITIALIZING
        ]
        await self._dualwrite.fail(starting, f"initial sync {message}")

    async def _batch_of(
        self, m: DualWriteMap, source: Side, company: str, after: list[Any] | None
    ) -> tuple[int, list[tuple[dict[str, Any], str]], list[Any] | None, bool]:
        target = source.other
        targets = await self._dualwrite.entities(target)
        goal = targets[m.entity_on(target)]
        store, entity, company_column = await self._source(m, source, company)
        page = await self._page(m, source, store, entity, company, company_column, after)
        written, failed = await copy_rows(
            self._dualwrite, m, source, entity, goal, targets, page.rows
        )
        last = page.rows[-1] if page.rows else None
        position = [last[f.name] for f in entity.key] if last is not None else after
        return written, failed, plain(position), page.has_next

    async def retry(self, environment: str, name: str, ids: list[int] | None = None) -> int:
        """Copy again only the rows the log holds for this map (all, or those with these
        ids); those that still fail stay in the log with their new message. Returns the
        rows copied."""
        m = await self._dualwrite.definition(name)
        chosen = select(sync_error).where(
            sync_error.c.environment == environment, sync_error.c.map == name
        )
        if ids is not None:
            chosen = chosen.where(sync_error.c.id.in_(ids))
        async with self._control.connect() as conn:
            logged = (await conn.execute(chosen)).all()
        copied = 0
        still: list[tuple[str, Side, list[tuple[dict[str, Any], str]]]] = []
        for side in Side:
            errors = [e for e in logged if e.source == side.value]
            if not errors:
                continue
            sources = await self._dualwrite.entities(side)
            targets = await self._dualwrite.entities(side.other)
            entity, goal = sources[m.entity_on(side)], targets[m.entity_on(side.other)]
            keys = [loads(error.key) for error in errors]
            # a row deleted since has nothing left to copy
            rows, _ = await read_by_keys(self._dualwrite.store(side), entity, keys)
            written, failed = await copy_rows(self._dualwrite, m, side, entity, goal, targets, rows)
            copied += written
            by_company: dict[str, list[tuple[dict[str, Any], str]]] = {}
            for key, message in failed:
                company = str(key.get(entity.company_field or "", "")).lower()
                by_company.setdefault(company, []).append((key, message))
            still += [(company, side, items) for company, items in by_company.items()]
        async with self._control.begin() as conn:
            ids = [e.id for e in logged]
            await conn.execute(delete(sync_error).where(sync_error.c.id.in_(ids)))
            for company, side, items in still:
                await log_refused(conn, environment, name, company, side, items)
        self._notifier.notify()
        return copied

    async def close(self) -> None:
        """Let a batch being read ahead finish, so its connection goes back to the pool."""
        ahead, self._ahead = self._ahead, None
        await _settle(ahead)

    async def _source(
        self, m: DualWriteMap, source: Side, company: str
    ) -> tuple[DataSource, EntityMetadata, str | None]:
        """The store a copy reads, its entity, and the column holding the company."""
        entity = (await self._dualwrite.entities(source))[m.entity_on(source)]
        company_column = None
        if company and source is Side.DATAVERSE:
            fno_company = (await self._dualwrite.entities(Side.FNO))[m.fno_entity].company_field
            company_column = next(dv for fno, dv in m.key if fno == fno_company)
        return self._dualwrite.store(source), entity, company_column

    async def _page(
        self,
        m: DualWriteMap,
        source: Side,
        store: DataSource,
        entity: EntityMetadata,
        company: str,
        company_column: str | None,
        after: list[Any] | None,
    ) -> Connection:
        """The batch after `after` (read ahead, when it could be), and the next one read
        meanwhile: the source store reads while the target store writes."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == (m.name, source, company, repr(after)):
            page = await ahead[1]
        else:
            await _settle(ahead)  # read for nothing; never cut off mid-read
            page = await store.fetch(self._plan(m, source, entity, company, company_column, after))
        if page.has_next and page.rows:
            last = plain([page.rows[-1][f.name] for f in entity.key])
            self._read_ahead(m, source, store, entity, company, company_column, last)
        return page

    def _read_ahead(
        self,
        m: DualWriteMap,
        source: Side,
        store: DataSource,
        entity: EntityMetadata,
        company: str,
        company_column: str | None,
        after: list[Any] | None,
    ) -> None:
        plan = self._plan(m, source, entity, company, company_column, after)
        wanted = (m.name, source, company, repr(after))
        self._ahead = (wanted, asyncio.create_task(store.fetch(plan)))

    async def _next(self, environment: str, run: str) -> Any:
        """The progress row of the batch to copy next: a map and company not done yet."""
        async with self._control.connect() as conn:
            return (
                await conn.execute(
                    select(progress)
                    .where(progress.c.environment == environment, progress.c.run == run)
                    .where(progress.c.done.is_(False))
                    .order_by(progress.c.position, progress.c.company)
                    .limit(1)
                )
            ).first()

    async def _read_next(self, environment: str, run: str) -> None:
        """A company (or map) is done: read the first batch of the next one ahead."""
        row = await self._next(environment, run)
        if row is None:
            return
        m = await self._dualwrite.definition(row.map)
        source = Side(row.source)
        store, entity, company_column = await self._source(m, source, row.company)
        after = loads(row.after) if row.after else None
        self._read_ahead(m, source, store, entity, row.company, company_column, after)

    def _plan(
        self,
        m: DualWriteMap,
        source: Side,
        entity: EntityMetadata,
        company: str,
        company_column: str | None,
        after: list[Any] | None,
    ) -> QueryPlan:
        """A batch of source rows in key order after `after`, of one legal entity: the
        fields the map reads, no others."""
        where = Compare(company_column, Op.EQ, company.upper()) if company_column else None
        read = {f.name for f in entity.key} | {c.field for c in m.filter_on(source)}
        read |= {name for f in m.fields if (name := f.name_on(source))}
        if entity.company_field:
            read.add(entity.company_field)
        return QueryPlan(
            entity=entity,
            columns=tuple(f.name for f in entity.fields if f.name in read),
            order=tuple(OrderTerm(f.name) for f in entity.key),
            where=where,
            page=PageRequest(first=self._batch, after=tuple(after) if after is not None else None),
            company=company if company and entity.company_scoped else None,
        )

    async def _finished(self, conn: AsyncConnection, environment: str, name: str) -> bool:
        pending = await conn.scalar(
            select(progress.c.company).where(
                progress.c.environment == environment,
                progress.c.map == name,
                progress.c.done.is_(False),
            )
        )
        return pending is None


async def log_refused(
    conn: AsyncConnection,
    environment: str,
    name: str,
    company: str,
    source: Side,
    failed: list[tuple[dict[str, Any], str]],
) -> None:
    """Add refused rows to the map's error log (in the caller's transaction), each
    raising DualWriteRecordFailed."""
    now = dt.datetime.now(dt.UTC)
    for key, message in failed:
        fields = {"Map": name, "Key": key, "Message": message}
        await raise_control_event(
            conn, BY_ID["DualWriteRecordFailedBusinessEvent"], company, fields
        )
        await conn.execute(
            insert(sync_error).values(
                environment=environment,
                map=name,
                company=company,
                source=source.value,
                key=dumps(plain(key)),
                message=message,
                at=now,
            )
        )


async def copy_rows(
    dualwrite: DualWriteService,
    m: DualWriteMap,
    source: Side,
    entity: EntityMetadata,
    goal: EntityMetadata,
    targets: dict[str, EntityMetadata],
    found: list[dict[str, Any]],
    settled: Callable[[], Awaitable[None]] | None = None,
) -> tuple[int, list[tuple[dict[str, Any], str]]]:
    """Carry source rows to the other side in one bulk upsert: (rows written, rows
    refused and why). Rows outside the map's filter are left alone. `settled` runs
    once the rows are written, before they commit: raising, it undoes them.
    Each row written into F&O raises the events a write of it there would (the rows
    are read before and after the bulk upsert)."""
    target = source.other
    raise_events = target is Side.FNO  # the catalog is F&O's
    rows: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    failed: list[tuple[dict[str, Any], str]] = []
    carrier = Carrier(m, source, entity, goal)
    keep = in_scope(m, source, entity)
    check: CreateCheck | None = None
    refused: dict[int, str] = {}
    async with dualwrite.store(target).unit() as unit:
        # lookups read the Dataverse store, in its own transaction when it is the
        # source, which ends before the rows are settled
        async with AsyncExitStack() as lookups_unit:
            reader = None
            if needs_lookups(m, target):
                reader = (
                    unit
                    if target is Side.DATAVERSE
                    else await lookups_unit.enter_async_context(
                        dualwrite.store(Side.DATAVERSE).unit()
                    )
                )
            tables = await dualwrite.entities(Side.DATAVERSE)
            cache: dict[tuple[Any, ...], Any] = {}
            for row in found:
                if not keep(row):
                    continue
                values = carrier.carry(row)
                key = key_on(m, target, values)
                try:
                    if reader is not None:
                        company = row.get(entity.company_field) if entity.company_field else None
                        await lookups.resolve(m, target, values, company, reader, tables, cache)
                    if check is None:  # every row carries the same fields
                        check = CreateCheck(goal, list(values), [*row_ids(goal, key)])
                    check(values)
                except GatewayError as exc:
                    failed.append((key_of(entity, row), exc.message))
                    continue
                rows.append({**values, **key})
                keys.append(key_of(entity, row))
        if rows:
            names = list(key_on(m, target, rows[0]))
            keys_of = [tuple(r[n] for n in names) for r in rows]
            before = await unit.rows(goal, names, keys_of) if raise_events else {}
            refused = await unit.upsert_many(goal, targets, names, rows, lambda: row_ids(goal, {}))
            failed += [(keys[i], message) for i, message in refused.items()]
            if raise_events:  # as a write of each row on that side would
                written = [k for i, k in enumerate(keys_of) if i not in refused]
                after = await unit.rows(goal, names, written)
                events: list[dict[str, Any]] = []
                for k in written:
                    kind = ChangeKind.UPDATE if k in before else ChangeKind.CREATE
                    events += outbox_rows(goal, kind, before.get(k), after.get(k), "")
                await unit.raise_events(events)
        if settled is not None:
            await settled()
    return len(rows) - len(refused), failed


def row_ids(entity: EntityMetadata, key: Mapping[str, Any]) -> dict[str, Any]:
    """A new row id for each primary key field the map's key does not give (Dataverse
    makes its own row ids)."""
    return {f.name: str(uuid.uuid4()) for f in entity.key if f.name not in key}


async def read_by_keys(
    store: Reader, entity: EntityMetadata, keys: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows with these keys as they are now, in the keys' order, and the keys of
    those gone since. Keys naming the same fields are read together, a few hundred a
    statement (`a = ? AND b IN (...)`)."""
    columns = tuple(f.name for f in entity.fields)
    same = _company_blind(entity)
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for key in keys:
        shapes.setdefault(tuple(key), []).append(key)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for names, group in shapes.items():
        *fixed, last = names
        prefixes: dict[tuple[Any, ...], list[Any]] = {}
        for key in group:
            prefixes.setdefault(tuple(key[n] for n in fixed), []).append(key[last])
        for prefix, values in prefixes.items():
            for start in range(0, len(values), 500):
                where = And(
                    (
                        *(Compare(n, Op.EQ, v) for n, v in zip(fixed, prefix, strict=True)),
                        Compare(last, Op.IN, tuple(values[start : start + 500])),
                    )
                )
                for row in (await store.fetch(QueryPlan(entity, columns, (), where))).rows:
                    found[(names, *(same(n, row[n]) for n in names))] = row
    present: list[dict[str, Any]] = []
    gone: list[dict[str, Any]] = []
    for key in keys:
        match = found.get((tuple(key), *(same(n, v) for n, v in key.items())))
        if match is not None:
            present.append(match)
        else:
            gone.append(key)
    return present, gone


async def _settle(ahead: tuple[Any, asyncio.Task[Connection]] | None) -> None:
    if ahead is not None:
        with suppress(Exception):
            await ahead[1]


def _company_blind(entity: EntityMetadata) -> Callable[[str, Any], Any]:
    """A key value as the store matches it: a company code in any case."""
    company = entity.company_field
    return lambda name, value: (
        value.lower() if name == company and isinstance(value, str) else value
    )


def key_of(entity: EntityMetadata, row: dict[str, Any]) -> dict[str, Any]:
    """The row's primary key, by field name."""
    return {f.name: row[f.name] for f in entity.key}
