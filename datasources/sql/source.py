"""`SqlDataSource`: runs read plans against an F&O store in SQLite or PostgreSQL.

One statement per plan level (see `statements`): the root page, then each relation
for all parent rows at once. Results become `Connection` pages; a relation's results
are attached to each parent row under its response key.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Table, event, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from datasources.base import Busy
from datasources.sql import notify, outbox, tracking
from datasources.sql.engine import BUSY_MS, DriverStatement, dispose_when_idle, driver_sql
from datasources.sql.json_statements import JsonStatements, Unsupported
from datasources.sql.metadata import dataarea, read_entities
from datasources.sql.statements import RANK, TOTAL, Statements
from datasources.sql.stores import describe
from datasources.sql.tables import entity_table
from datasources.sql.writes import WriteUnit
from gateway.kernel.catalog import Cardinality, EntityMetadata
from gateway.kernel.change import Change, TrackedChange
from gateway.kernel.errors import UpstreamFailed
from gateway.kernel.plan import ChildPlan, Connection, QueryPlan, Row, child_slot, page_of
from gateway.kernel.shape import Shape

Key = tuple[Any, ...]
T = TypeVar("T")


class SqlDataSource:
    def __init__(self, engine: AsyncEngine, read_pool_size: int = 10) -> None:
        self.engine = engine
        self.read_pool_size = read_pool_size
        # Reads run in autocommit: no BEGIN and ROLLBACK round trips around each one.
        # Every statement sees its own snapshot, as it would in a READ COMMITTED read.
        self.reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._tables: dict[str, tuple[EntityMetadata, Table]] = {}
        self.statements = Statements(self.table, engine.dialect.name)
        self.json = JsonStatements(self.statements)
        self._tracking: bool | None = None  # whether writes must carry the gateway's mark
        self._listeners: list[notify.Listener] = []
        self._pool: asyncio.Future[asyncpg.Pool] | None = None
        if engine.dialect.name == "postgresql":
            event.listen(engine.sync_engine, "checkout", tracking.mark_session)

    def table(self, entity: EntityMetadata) -> Table:
        cached = self._tables.get(entity.name)
        if cached is None or cached[0] is not entity:
            cached = (entity, entity_table(entity))
            self._tables[entity.name] = cached
        return cached[1]

    async def published_entities(self) -> list[EntityMetadata]:
        async with self.reader.connect() as conn:
            return await read_entities(conn)

    async def companies(self) -> list[str]:
        async with self.reader.connect() as conn:
            result = await conn.execute(select(dataarea.c.id).order_by(dataarea.c.id))
            return list(result.scalars())

    async def ping(self) -> None:
        """Raise unless the store answers."""
        async with self.reader.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        for listener in self._listeners:
            await listener.stop()
        if self._pool is not None:
            await (await self._pool).close()
        await dispose_when_idle(self.engine)

    async def write(
        self,
        entity: EntityMetadata,
        targets: Mapping[str, EntityMetadata],
        change: Change,
        values: Mapping[str, Any],
    ) -> tuple[Row | None, Row | None]:
        """Apply one change in its own transaction: all of it lands, or none."""
        async with self.unit() as unit:
            return await unit.apply(entity, targets, change, values)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[WriteUnit]:
        """A transaction to write in: committed when the block ends, rolled back if it raises."""
        try:
            async with self.engine.begin() as conn:
                if self._tracking is None:
                    self._tracking = await tracking.is_tracking(conn)
                if self._tracking:
                    await tracking.mark(conn)
                yield WriteUnit(conn, self.table)
                if self._tracking:
                    await tracking.unmark(conn)
        except DBAPIError as exc:
            raise UpstreamFailed(f"the store refused the change: {describe(exc)}") from exc
        except OSError as exc:  # the connection broke (a restart): nothing was committed
            raise UpstreamFailed(f"the store could not be reached: {exc}") from exc

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[_Held]:
        """See `DataSource.hold`. PostgreSQL locks the rows read (FOR UPDATE NOWAIT);
        SQLite, whose writers lock the whole store, takes its write lock."""
        sqlite = self.engine.dialect.name == "sqlite"
        async with self.engine.connect() as conn:
            try:
                async with conn.begin() as transaction:
                    if sqlite:
                        await conn.exec_driver_sql("PRAGMA busy_timeout=0")
                        await _held(conn.exec_driver_sql("BEGIN IMMEDIATE"))
                    yield _Held(conn, self.statements, lock=not sqlite)
                    await transaction.rollback()
            finally:
                if sqlite:
                    await conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_MS}")
                    await conn.rollback()

    async def prepare_outbox(self) -> None:
        """Create the store's event outbox, if it has none yet."""
        async with self.engine.begin() as conn:
            await outbox.ensure(conn)

    def watch_events(self, wake: Callable[[], None]) -> None:
        """Call `wake` when any writer commits events to the outbox (PostgreSQL)."""
        listener = notify.Listener(self.engine, outbox.outbox.name, wake)
        listener.start()
        self._listeners.append(listener)

    async def outbox_depth(self) -> int:
        """Events committed here and not yet taken into the event log."""
        async with self.reader.connect() as conn:
            return await outbox.depth(conn)

    async def take_events(self, limit: int) -> list[dict[str, Any]]:
        """The oldest events in the outbox."""
        async with self.reader.connect() as conn:
            return await outbox.take(conn, limit)

    async def forget_events(self, ids: Sequence[int]) -> None:
        async with self.engine.begin() as conn:
            await outbox.forget(conn, ids)

    async def track(self, entities: Sequence[EntityMetadata]) -> None:
        """Log what other clients write to these entities' tables (see `tracking`)."""
        try:
            async with self.engine.begin() as conn:
                for entity in entities:
                    await tracking.install(conn, entity)
        except DBAPIError as exc:
            raise UpstreamFailed(f"the store cannot track changes: {describe(exc)}") from exc
        self._tracking = True

    async def changes(self, entities: Sequence[EntityMetadata], limit: int) -> list[TrackedChange]:
        """The oldest changes other clients made to these entities, oldest first.
        Changes to tables no longer asked about are forgotten."""
        if not self._tracking:
            return []
        async with self.reader.connect() as conn:
            found, others = await tracking.read(conn, entities, limit)
        if others:
            await self.forget(others)
        return found

    async def forget(self, ids: Sequence[int], events: Sequence[Mapping[str, Any]] = ()) -> None:
        """Drop handled changes from the log, putting the events they raised into the
        outbox in the same transaction: each is raised once, however often it is read."""
        async with self.engine.begin() as conn:
            await tracking.forget(conn, ids)
            await outbox.add(conn, events)

    async def fetch(self, plan: QueryPlan) -> Connection:
        # A read is not given up halfway: when graphql-core drops a field whose sibling
        # failed, the read still ends and gives its connection back to the pool (given
        # up while being checked out, the connection was left to the collector).
        return await asyncio.shield(self._fetch(plan))

    async def _fetch(self, plan: QueryPlan) -> Connection:
        try:
            async with self.reader.connect() as conn:
                page = await self._root(conn, plan)
                await self._levels(conn, plan, page.rows)
                return page
        except DBAPIError as exc:
            raise UpstreamFailed(f"the F&O store failed the read: {exc.orig}") from exc
        except OSError as exc:  # no connection to be had (a restart)
            raise UpstreamFailed(f"the F&O store could not be reached: {exc}") from exc

    def prepare_json(self, reads: Sequence[tuple[QueryPlan, Shape]]) -> object | None:
        """One statement answering every read with its response JSON; None for a read
        this store cannot build (see `JsonStatements`).

        It also checks that each company asked for exists.
        """
        try:
            columns = [self.json.root(plan, shape) for plan, shape in reads]
        except Unsupported:
            return None
        companies = {plan.company for plan, _ in reads if plan.company is not None}
        for company in sorted(companies):
            columns.append(select(dataarea.c.id).where(dataarea.c.id == company).exists())
        return _PreparedJson(driver_sql(select(*columns), self.engine.dialect), len(reads))

    async def fetch_json(
        self, prepared: object, arguments: Mapping[str, Any]
    ) -> list[str | None] | None:
        """Run a prepared statement with the values of its slots; None if a company
        asked for is unknown.

        It goes straight to the driver: the SQL was compiled once, when prepared, and
        asyncpg keeps it prepared on each connection, so a read costs one round trip
        and no per-execution work in SQLAlchemy (which walks the statement each time).
        """
        assert isinstance(prepared, _PreparedJson)
        sql, params = prepared.statement.sql, prepared.statement.bind(arguments)
        if self.engine.dialect.name == "sqlite":
            try:
                async with self.reader.connect() as conn:
                    result = await conn.exec_driver_sql(sql, params)
                    row = result.one()
            except DBAPIError as exc:
                raise UpstreamFailed(f"the F&O store failed the read: {exc.orig}") from exc
        else:
            pool = await self._json_pool()
            try:
                async with pool.acquire() as conn:
                    row = await conn.fetchrow(sql, *params)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                raise UpstreamFailed(f"the F&O store failed the read: {exc}") from exc
        if not all(row[prepared.reads :]):
            return None
        return list(row[: prepared.reads])

    async def _json_pool(self) -> asyncpg.Pool:
        """The driver's own pool for prepared JSON reads, connected as the engine is."""
        if self._pool is None:
            _args, options = self.engine.dialect.create_connect_args(self.engine.url)
            self._pool = asyncio.ensure_future(
                asyncpg.create_pool(
                    **options, min_size=1, max_size=self.read_pool_size, reset=_nothing_to_reset
                )
            )
        if not self._pool.done():
            return await asyncio.shield(self._pool)
        return self._pool.result()

    async def _root(self, conn: AsyncConnection, plan: QueryPlan) -> Connection:
        rows = [dict(r) for r in (await conn.execute(self.statements.root(plan))).mappings()]
        total = rows[0][TOTAL] if rows and plan.total else None
        for row in rows:
            row.pop(TOTAL, None)
        if plan.total and not rows:  # nothing for the count to ride on
            total = (await conn.execute(self.statements.count(plan))).scalar_one()
        if plan.page is None:
            return Connection(rows, plan.order, total=total)
        return page_of(rows, plan, total)

    async def _levels(self, conn: AsyncConnection, plan: QueryPlan, rows: list[Row]) -> None:
        for child in plan.children:
            if rows:
                fetched = await self._child(conn, child, rows)
                await self._levels(conn, child.plan, fetched)

    async def _child(
        self, conn: AsyncConnection, child: ChildPlan, parents: list[Row]
    ) -> list[Row]:
        """Fetch one relation for every parent in one statement; attach; return the rows."""
        sources = [s for s, _ in child.relation.constraints]
        targets = [t for _, t in child.relation.constraints]
        slot = child_slot(child.key)
        keys = sorted({k for k in (tuple(p[s] for s in sources) for p in parents) if None not in k})
        grouped: dict[Key, list[Row]] = defaultdict(list)
        totals: dict[Key, int] = {}
        if keys:
            result = await conn.execute(self.statements.children(child, keys))
            for mapping in result.mappings():
                row = dict(mapping)
                row.pop(RANK, None)
                key = tuple(row[t] for t in targets)
                if TOTAL in row:
                    totals[key] = row.pop(TOTAL)
                grouped[key].append(row)

        if child.relation.cardinality is Cardinality.ONE:
            for parent in parents:
                found = grouped.get(tuple(parent[s] for s in sources))
                parent[slot] = found[0] if found else None
            return [rows[0] for rows in grouped.values()]

        plan = child.plan
        assert plan.page is not None
        pages: dict[Key, Connection] = {}
        for parent in parents:
            key = tuple(parent[s] for s in sources)
            if key not in pages:
                total = totals.get(key, 0) if plan.total else None
                if plan.total and key not in totals and plan.page.has_cursor:
                    # every row of this parent lies before the cursor: count them alone
                    match = dict(zip(targets, key, strict=True))
                    total = (await conn.execute(self.statements.count(plan, match))).scalar_one()
                pages[key] = page_of(grouped.get(key, []), plan, total)
            parent[slot] = pages[key]
        return [row for page in pages.values() for row in page.rows]


class _Held:
    def __init__(self, conn: AsyncConnection, statements: Statements, lock: bool) -> None:
        self._conn = conn
        self._statements = statements
        self._lock = lock

    async def fetch(self, plan: QueryPlan) -> Connection:
        statement = self._statements.root(plan)
        if self._lock:
            statement = statement.with_for_update(nowait=True)
        result = await _held(self._conn.execute(statement))
        return Connection([dict(r) for r in result.mappings()], plan.order)


async def _held(statement: Awaitable[T]) -> T:
    """Run a statement of a hold: `Busy` when another writer holds what it needs."""
    try:
        return await statement
    except DBAPIError as exc:
        if tracking.is_busy(exc):
            raise Busy from exc
        raise UpstreamFailed(f"the store failed the read: {describe(exc)}") from exc


async def _nothing_to_reset(_conn: asyncpg.Connection) -> None:
    """A JSON read is one statement in autocommit and leaves no session state, so a
    connection goes back to the pool as it is: asyncpg's own reset would cost each read
    a second round trip."""


@dataclass(frozen=True)
class _PreparedJson:
    statement: DriverStatement
    reads: int
