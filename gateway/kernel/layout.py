"""A read's rows laid out as its response, key by key, as a `Shape` says: for a store
whose answers are rows, not JSON it builds itself (an OData service), the response
is made without field-by-field resolution. Values come out as GraphQL serialises
them: enums by symbol, decimals, dates and times as text."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from gateway.kernel.catalog import EntityMetadata, FieldType
from gateway.kernel.cursor import encode_cursor
from gateway.kernel.plan import Connection, QueryPlan, Row, child_slot
from gateway.kernel.shape import (
    Column,
    ConnectionShape,
    Cursor,
    Edges,
    Nested,
    Nodes,
    PageInfoShape,
    RowShape,
    Shape,
    TotalCount,
    Typename,
)

Json = Any


def lay_out(plan: QueryPlan, shape: Shape, found: Connection) -> Json:
    """The response of a root field: its row (None if there is none), or its page."""
    if isinstance(shape, RowShape):
        return _row(plan, shape, found.rows[0]) if found.rows else None
    return _page(plan, shape, found)


def _page(plan: QueryPlan, shape: ConnectionShape, page: Connection) -> Json:
    out: dict[str, Json] = {}
    for key, entry in shape.entries:
        if isinstance(entry, TotalCount):
            out[key] = page.total or 0
        elif isinstance(entry, Nodes):
            out[key] = [_row(plan, entry.row, row) for row in page.rows]
        elif isinstance(entry, Edges):
            out[key] = [_edge(plan, entry, page, row) for row in page.rows]
        elif isinstance(entry, PageInfoShape):
            out[key] = _page_info(entry, page)
        else:
            out[key] = entry.name
    return out


def _edge(plan: QueryPlan, shape: Edges, page: Connection, row: Row) -> Json:
    out: dict[str, Json] = {}
    for key, entry in shape.entries:
        if isinstance(entry, Cursor):
            out[key] = encode_cursor(page.order, row)
        elif isinstance(entry, Nodes):
            out[key] = _row(plan, entry.row, row)
        else:
            out[key] = entry.name
    return out


def _page_info(shape: PageInfoShape, page: Connection) -> Json:
    rows = page.rows
    values = {
        "hasNextPage": page.has_next,
        "hasPreviousPage": page.has_previous,
        "startCursor": encode_cursor(page.order, rows[0]) if rows else None,
        "endCursor": encode_cursor(page.order, rows[-1]) if rows else None,
    }
    return {
        key: entry.name if isinstance(entry, Typename) else values[entry]
        for key, entry in shape.entries
    }


def _row(plan: QueryPlan, shape: RowShape, row: Row) -> Json:
    out: dict[str, Json] = {}
    for key, entry in shape.entries:
        if isinstance(entry, Column):
            out[key] = _value(plan.entity, entry.field, row.get(entry.field))
        elif isinstance(entry, Nested):
            value = row[child_slot(entry.child)]
            child = next(c.plan for c in plan.children if c.key == entry.child)
            if isinstance(entry.shape, RowShape):
                out[key] = None if value is None else _row(child, entry.shape, value)
            else:
                out[key] = _page(child, entry.shape, value)
        else:
            out[key] = entry.name
    return out


def _value(entity: EntityMetadata, name: str, value: Any) -> Json:
    if value is None or not entity.has_field(name):  # a slot of the row's own (its ETag)
        return value
    spec = entity.field(name)
    if spec.type is FieldType.ENUM:
        assert spec.enum is not None
        return spec.enum.symbol_of(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):  # dates and times
        return value.isoformat()
    return value
