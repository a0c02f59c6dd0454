"""Compile read plans into SQLAlchemy Core: filters, keyset ordering, relation lookups.

Every value reaches the store as a bound parameter; identifiers come from entity
metadata, never from the request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    String,
    Table,
    and_,
    bindparam,
    cast,
    false,
    func,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import UnaryExpression

from gateway.kernel.catalog import EntityMetadata
from gateway.kernel.plan import (
    And,
    Compare,
    Filter,
    Not,
    Op,
    Or,
    OrderTerm,
    Quantifier,
    RelationFilter,
)

ColumnFor = Callable[[str], ColumnElement[Any]]
TableFor = Callable[[EntityMetadata], Table]


def columns_of(entity: EntityMetadata, table: FromClause) -> ColumnFor:
    """Look a field's column up by field name."""
    return lambda name: table.c[entity.field(name).column]


def filter_clause(
    where: Filter, entity: EntityMetadata, col: ColumnFor, table_for: TableFor
) -> ColumnElement[bool]:
    if isinstance(where, Compare):
        return _compare(col(where.field), where.op, where.value)
    if isinstance(where, And):
        return and_(true(), *(filter_clause(f, entity, col, table_for) for f in where.items))
    if isinstance(where, Or):
        return or_(false(), *(filter_clause(f, entity, col, table_for) for f in where.items))
    if isinstance(where, Not):
        return not_(filter_clause(where.item, entity, col, table_for))
    return _relation_clause(where, col, table_for)


def _compare(column: ColumnElement[Any], op: Op, value: Any) -> ColumnElement[bool]:
    clause: ColumnElement[bool]
    match op:
        case Op.EQ:
            clause = column == value
        case Op.NEQ:
            clause = column != value
        case Op.GT:
            clause = column > value
        case Op.GTE:
            clause = column >= value
        case Op.LT:
            clause = column < value
        case Op.LTE:
            clause = column <= value
        case _:
            return _membership_or_text(column, op, value)
    return clause


def _membership_or_text(column: ColumnElement[Any], op: Op, value: Any) -> ColumnElement[bool]:
    match op:
        case Op.IN:
            return column.in_(value)
        case Op.NIN:
            return column.not_in(value)
        case Op.CONTAINS:
            return column.icontains(value, autoescape=True)
        case Op.STARTS_WITH:
            return column.istartswith(value, autoescape=True)
        case Op.IS_NULL:
            return column.is_(None) if value else column.is_not(None)
    raise AssertionError(op)


def _relation_clause(
    where: RelationFilter, col: ColumnFor, table_for: TableFor
) -> ColumnElement[bool]:
    target = where.target
    alias = table_for(target).alias()
    target_col = columns_of(target, alias)
    joined = and_(*(target_col(t) == col(s) for s, t in where.relation.constraints))
    condition = filter_clause(where.where, target, target_col, table_for)
    if where.quantifier is Quantifier.SOME:
        return select(1).select_from(alias).where(joined, condition).exists()
    if where.quantifier is Quantifier.NONE:
        return not_(select(1).select_from(alias).where(joined, condition).exists())
    violations = select(1).select_from(alias).where(joined, condition.is_not(True))
    return not_(violations.exists())


def order_clauses(order: Sequence[OrderTerm], col: ColumnFor) -> list[UnaryExpression[Any]]:
    clauses = []
    for term in order:
        column = col(term.field)
        clause = column.desc() if term.descending else column.asc()
        clauses.append(clause.nulls_first() if term.nulls_first else clause.nulls_last())
    return clauses


def keyset_clause(
    entity: EntityMetadata, order: Sequence[OrderTerm], values: Sequence[Any], col: ColumnFor
) -> ColumnElement[bool]:
    """Rows strictly after `values` in `order` (pass reversed terms for 'before')."""
    branches = []
    for i, term in enumerate(order):
        equal = [_equal(col(order[j].field), values[j]) for j in range(i)]
        nullable = entity.field(term.field).nullable
        branches.append(and_(true(), *equal, _after(term, col(term.field), values[i], nullable)))
    return or_(false(), *branches)


def _equal(column: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _after(
    term: OrderTerm, column: ColumnElement[Any], value: Any, nullable: bool
) -> ColumnElement[bool]:
    if value is None:  # nulls sit at one end of the order
        return column.is_not(None) if term.nulls_first else false()
    beyond = column < value if term.descending else column > value
    return beyond if term.nulls_first or not nullable else or_(beyond, column.is_(None))


def key_rows(dialect: str, keys: Sequence[tuple[Any, ...]], types: Sequence[Any]) -> Select[Any]:
    """The parent keys of a level as a one-parameter row source (any number of keys)."""
    payload = json.dumps([list(k) for k in keys], default=str)
    if dialect == "postgresql":
        elements = func.jsonb_array_elements(cast(bindparam("keys", payload, String), JSONB))
        source = elements.table_valued("value")
        return select(
            *(cast(source.c.value.op("->>")(i), t).label(f"k{i}") for i, t in enumerate(types))
        )
    elements = func.json_each(bindparam("keys", payload, String))
    source = elements.table_valued("value")
    return select(
        *(func.json_extract(source.c.value, f"$[{i}]").label(f"k{i}") for i in range(len(types)))
    )


def key_match(columns: Sequence[ColumnElement[Any]], rows: Select[Any]) -> ColumnElement[bool]:
    if len(columns) == 1:
        return columns[0].in_(rows)
    return tuple_(*columns).in_(rows)
