"""The shape of a root field's response: which key holds what, in selection order.

A `QueryPlan` says what to read; a shape says how the answer is laid out in the
GraphQL response (aliases, `nodes` and `edges`, `pageInfo`, `__typename`). A store
that can build JSON itself (PostgreSQL) answers a plan and its shape in one
statement, skipping field-by-field resolution.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Typename:
    name: str


@dataclass(frozen=True, slots=True)
class Column:
    field: str


@dataclass(frozen=True, slots=True)
class Nested:
    """A relation's result, read by the child plan under `child` (a response key)."""

    child: str
    shape: RowShape | ConnectionShape


@dataclass(frozen=True, slots=True)
class RowShape:
    entries: tuple[tuple[str, Column | Nested | Typename], ...]


@dataclass(frozen=True, slots=True)
class Nodes:
    row: RowShape


@dataclass(frozen=True, slots=True)
class Cursor:
    pass


@dataclass(frozen=True, slots=True)
class Edges:
    entries: tuple[tuple[str, Cursor | Nodes | Typename], ...]  # Nodes here is the edge's node


@dataclass(frozen=True, slots=True)
class PageInfoShape:
    entries: tuple[tuple[str, str | Typename], ...]  # hasNextPage, startCursor, ...


@dataclass(frozen=True, slots=True)
class TotalCount:
    pass


@dataclass(frozen=True, slots=True)
class ConnectionShape:
    entries: tuple[tuple[str, TotalCount | Nodes | Edges | PageInfoShape | Typename], ...]


Shape = RowShape | ConnectionShape
