"""The statements a read plan runs: one for the root page, one per relation level.

Pure construction (no I/O), so the SQL of a plan can be printed and pinned by tests.
Rows come back labelled with entity field names; `@total` and `@rank` are the
bookkeeping columns the source strips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, true

from datasources.sql.compiler import (
    ColumnFor,
    TableFor,
    columns_of,
    filter_clause,
    key_match,
    key_rows,
    keyset_clause,
    order_clauses,
)
from gateway.kernel.catalog import Cardinality
from gateway.kernel.plan import ChildPlan, OrderTerm, PageRequest, QueryPlan

TOTAL, RANK = "@total", "@rank"


class Statements:
    def __init__(self, table_for: TableFor, dialect: str) -> None:
        self.table = table_for
        self.dialect = dialect

    def condition(self, plan: QueryPlan, col: ColumnFor) -> ColumnElement[bool]:
        """Company scope and filter: what totalCount counts."""
        parts: list[ColumnElement[bool]] = []
        if plan.company is not None and plan.entity.company_field is not None:
            parts.append(col(plan.entity.company_field) == plan.company)
        if plan.where is not None:
            parts.append(filter_clause(plan.where, plan.entity, col, self.table))
        return and_(true(), *parts)

    def root(self, plan: QueryPlan) -> Select[Any]:
        """The page: filtered, past the cursors, ordered, one row beyond the page size."""
        table = self.table(plan.entity)
        col = columns_of(plan.entity, table)
        condition = self.condition(plan, col)
        stmt = select(*(col(name).label(name) for name in plan.required_columns())).where(condition)
        page = plan.page
        if page is not None:
            stmt = stmt.where(*cursor_clauses(plan, page, col)).limit(page.limit + 1)
        if plan.total:
            count = select(func.count()).select_from(table).where(condition).scalar_subquery()
            stmt = stmt.add_columns(count.label(TOTAL))
        return stmt.order_by(*order_clauses(direction(plan.order, page), col))

    def count(self, plan: QueryPlan, match: dict[str, Any] | None = None) -> Select[Any]:
        table = self.table(plan.entity)
        col = columns_of(plan.entity, table)
        extra = [col(name) == value for name, value in (match or {}).items()]
        return select(func.count()).select_from(table).where(self.condition(plan, col), *extra)

    def children(self, child: ChildPlan, keys: Sequence[tuple[Any, ...]]) -> Select[Any]:
        """Related rows of every parent key at once; to-many relations paged per parent."""
        plan = child.plan
        targets = [t for _, t in child.relation.constraints]
        col = columns_of(plan.entity, self.table(plan.entity))
        key_columns = [col(t) for t in targets]
        parents = key_rows(self.dialect, keys, [c.type for c in key_columns])
        names = dict.fromkeys((*plan.required_columns(), *targets))
        labelled = [col(n).label(n) for n in names]
        matching = (key_match(key_columns, parents), self.condition(plan, col))
        if child.relation.cardinality is Cardinality.ONE:
            return select(*labelled).where(*matching)

        page = plan.page
        assert page is not None, "to-many relations are always paged"
        if plan.total:  # counted before the cursors apply
            labelled.append(func.count().over(partition_by=key_columns).label(TOTAL))
        base = select(*labelled).where(*matching).subquery()

        def inner(name: str) -> ColumnElement[Any]:
            return base.c[name]

        rank = func.row_number().over(
            partition_by=[inner(t) for t in targets],
            order_by=order_clauses(direction(plan.order, page), inner),
        )
        ranked = select(base, rank.label(RANK)).where(*cursor_clauses(plan, page, inner))
        paged = ranked.subquery()
        return (
            select(paged)
            .where(paged.c[RANK] <= page.limit + 1)
            .order_by(*(paged.c[t] for t in targets), paged.c[RANK])
        )


def direction(order: tuple[OrderTerm, ...], page: PageRequest | None) -> tuple[OrderTerm, ...]:
    """Paging backwards reads the order reversed, from the `before` cursor back."""
    if page is not None and page.backwards:
        return tuple(term.reversed() for term in order)
    return order


def cursor_clauses(plan: QueryPlan, page: PageRequest, col: ColumnFor) -> list[ColumnElement[bool]]:
    clauses = []
    if page.after is not None:
        clauses.append(keyset_clause(plan.entity, plan.order, page.after, col))
    if page.before is not None:
        reverse = tuple(t.reversed() for t in plan.order)
        clauses.append(keyset_clause(plan.entity, reverse, page.before, col))
    return clauses
