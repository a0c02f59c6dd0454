"""`SqlDataSource`: runs read plans against an F&O store in SQLite or PostgreSQL.

One statement per plan level: the root page, then each relation for all parent rows
at once (parent keys travel as one JSON parameter; per-parent paging uses a window).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, func, select, true
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from datasources.sql.compiler import (
    columns_of,
    filter_clause,
    key_match,
    key_rows,
    keyset_clause,
    order_clauses,
)
from datasources.sql.metadata import dataarea, read_entities
from datasources.sql.tables import entity_table
from gateway.kernel.catalog import Cardinality, EntityMetadata
from gateway.kernel.errors import UpstreamFailed
from gateway.kernel.plan import ChildPlan, Connection, QueryPlan, Row, child_slot

_TOTAL, _RANK = "@total", "@rank"


class SqlDataSource:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._tables: dict[str, tuple[EntityMetadata, Table]] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def table(self, entity: EntityMetadata) -> Table:
        cached = self._tables.get(entity.name)
        if cached is None or cached[0] is not entity:
            cached = (entity, entity_table(entity))
            self._tables[entity.name] = cached
        return cached[1]

    async def published_entities(self) -> list[EntityMetadata]:
        async with self.engine.connect() as conn:
            return await read_entities(conn)

    async def companies(self) -> list[str]:
        async with self.engine.connect() as conn:
            result = await conn.execute(select(dataarea.c.id).order_by(dataarea.c.id))
            return list(result.scalars())

    async def close(self) -> None:
        await self.engine.dispose()

    async def fetch(self, plan: QueryPlan) -> Connection:
        try:
            async with self.engine.connect() as conn:
                page = await self._root(conn, plan)
                await self._children(conn, plan, page.rows)
                return page
        except DBAPIError as exc:
            raise UpstreamFailed(f"the F&O store failed the read: {exc.orig}") from exc

    async def _root(self, conn: AsyncConnection, plan: QueryPlan) -> Connection:
        entity = plan.entity
        table = self.table(entity)
        col = columns_of(entity, table)
        condition = self._condition(plan, col)
        page = plan.page
        order = plan.order
        if page is not None and page.backwards:
            order = tuple(term.reversed() for term in order)
        stmt = select(*(col(name).label(name) for name in plan.required_columns()))
        stmt = stmt.where(condition)
        if page is not None:
            if page.after is not None:
                stmt = stmt.where(keyset_clause(plan.order, page.after, col))
            if page.before is not None:
                reverse = tuple(term.reversed() for term in plan.order)
                stmt = stmt.where(keyset_clause(reverse, page.before, col))
            stmt = stmt.limit(page.limit + 1)
        if plan.total:
            count = select(func.count()).select_from(table).where(condition).scalar_subquery()
            stmt = stmt.add_columns(count.label(_TOTAL))
        stmt = stmt.order_by(*order_clauses(order, col))

        rows = [dict(r) for r in (await conn.execute(stmt)).mappings()]
        total = rows[0].get(_TOTAL) if rows else 0
        for row in rows:
            row.pop(_TOTAL, None)
        if page is None:
            return Connection(rows=rows, order=plan.order, total=total)
        more = len(rows) > page.limit
        del rows[page.limit :]
        if page.backwards:
            rows.reverse()
            return Connection(rows, plan.order, page.before is not None, more, total)
        if plan.total and not rows:
            total = await self._count(conn, table, condition)
        return Connection(rows, plan.order, more, page.after is not None, total)

    async def _count(
        self, conn: AsyncConnection, table: Table, condition: ColumnElement[bool]
    ) -> int:
        """totalCount of a page past the end: the subquery had no row to ride on."""
        result = await conn.execute(select(func.count()).select_from(table).where(condition))
        return int(result.scalar_one())

    def _condition(self, plan: QueryPlan, col: Any) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = []
        if plan.company is not None and plan.entity.company_field is not None:
            parts.append(col(plan.entity.company_field) == plan.company)
        if plan.where is not None:
            parts.append(filter_clause(plan.where, plan.entity, col, self.table))
        return and_(true(), *parts)

    async def _children(self, conn: AsyncConnection, plan: QueryPlan, rows: list[Row]) -> None:
        for child in plan.children:
            if not rows:
                continue
            fetched = await self._child(conn, child, rows)
            await self._children(conn, child.plan, fetched)

    async def _child(
        self, conn: AsyncConnection, child: ChildPlan, parents: list[Row]
    ) -> list[Row]:
        """Fetch one relation for every parent in one statement; attach; return the rows."""
        sources = [s for s, _ in child.relation.constraints]
        targets = [t for _, t in child.relation.constraints]
        slot = child_slot(child.key)
        keys = {tuple(p[s] for s in sources) for p in parents}
        keys.discard(tuple(None for _ in sources))
        keys = {k for k in keys if None not in k}
        plan = child.plan
        entity = plan.entity
        table = self.table(entity)
        col = columns_of(entity, table)
        key_cols = [col(t) for t in targets]
        in_keys = key_match(
            key_cols, key_rows(self.dialect, sorted(keys), [c.type for c in key_cols])
        )
        names = dict.fromkeys((*plan.required_columns(), *targets))

        if child.relation.cardinality is Cardinality.ONE:
            stmt = select(*(col(n).label(n) for n in names)).where(
                in_keys, self._condition(plan, col)
            )
            found = (
                {}
                if not keys
                else {
                    tuple(r[t] for t in targets): r
                    for r in (dict(m) for m in (await conn.execute(stmt)).mappings())
                }
            )
            for parent in parents:
                parent[slot] = found.get(tuple(parent[s] for s in sources))
            return list({id(r): r for r in found.values()}.values())

        page = plan.page
        assert page is not None, "to-many relations are always paged"
        order = plan.order
        if page.backwards:
            order = tuple(term.reversed() for term in order)
        base_cols = [col(n).label(n) for n in names]
        if plan.total:
            base_cols.append(func.count().over(partition_by=key_cols).label(_TOTAL))
        base = select(*base_cols).where(in_keys, self._condition(plan, col)).subquery()
        inner = columns_of_subquery(base)
        ranked = select(
            base,
            func.row_number()
            .over(partition_by=[inner(t) for t in targets], order_by=order_clauses(order, inner))
            .label(_RANK),
        )
        if page.after is not None:
            ranked = ranked.where(keyset_clause(plan.order, page.after, inner))
        if page.before is not None:
            reverse = tuple(term.reversed() for term in plan.order)
            ranked = ranked.where(keyset_clause(reverse, page.before, inner))
        ranked_sq = ranked.subquery()
        stmt = (
            select(ranked_sq)
            .where(ranked_sq.c[_RANK] <= page.limit + 1)
            .order_by(*(ranked_sq.c[t] for t in targets), ranked_sq.c[_RANK])
        )
        grouped: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
        totals: dict[tuple[Any, ...], int] = {}
        if keys:
            for mapping in (await conn.execute(stmt)).mappings():
                row = dict(mapping)
                row.pop(_RANK)
                key = tuple(row[t] for t in targets)
                totals[key] = row.pop(_TOTAL, 0)
                grouped[key].append(row)
        pages: dict[tuple[Any, ...], Connection] = {}
        for key, found_rows in grouped.items():
            more = len(found_rows) > page.limit
            del found_rows[page.limit :]
            if page.backwards:
                found_rows.reverse()
                pages[key] = Connection(found_rows, plan.order, page.before is not None, more)
            else:
                pages[key] = Connection(found_rows, plan.order, more, page.after is not None)
            pages[key].total = totals.get(key)
        for parent in parents:
            key = tuple(parent[s] for s in sources)
            result = pages.get(key)
            if result is None:
                total = 0 if plan.total and page.after is None and page.before is None else None
                result = Connection([], plan.order, total=total)
                if plan.total and total is None:
                    result.total = await self._child_count(conn, child, key)
                pages[key] = result
            parent[slot] = result
        return _flatten(pages.values())

    async def _child_count(
        self, conn: AsyncConnection, child: ChildPlan, key: tuple[Any, ...]
    ) -> int:
        """totalCount for a parent whose cursor page came back empty (rare)."""
        entity = child.plan.entity
        table = self.table(entity)
        col = columns_of(entity, table)
        match = [col(t) == v for (_, t), v in zip(child.relation.constraints, key, strict=True)]
        condition = and_(self._condition(child.plan, col), *match)
        return await self._count(conn, table, condition)


def columns_of_subquery(subquery: Any) -> Any:
    return lambda name: subquery.c[name]


def _flatten(pages: Iterable[Connection]) -> list[Row]:
    return [row for page in pages for row in page.rows]
