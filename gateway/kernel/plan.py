"""The read plan: what to fetch, from which entity, filtered, ordered and paged.

A `QueryPlan` is built once per root field from the GraphQL selection and handed
to a datasource, which compiles it for its store. Child plans follow relations; the
datasource must fetch each level in at most one statement, whatever the row count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.kernel.catalog import EntityMetadata, Relation


class Op(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IN = "in"
    NIN = "nin"
    CONTAINS = "contains"
    STARTS_WITH = "startsWith"
    IS_NULL = "isNull"


COMPARISONS = frozenset({Op.EQ, Op.NEQ, Op.GT, Op.GTE, Op.LT, Op.LTE})


class Slot:
    """A query variable's value, not known when the plan is made: the store binds it as
    a parameter of the prepared statement, so one plan serves every value.

    Anything that would look at the value while planning fails loudly (the plan is
    then made with the values, as for any other query): only a value that reaches the
    statement untouched may stay a slot.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"

    def _unknown(self, *_: object) -> Any:
        raise TypeError(f"the value of ${self.name} is not known while planning")

    __str__ = __bool__ = __format__ = __lt__ = __le__ = __gt__ = __ge__ = __len__ = _unknown
    __iter__ = __int__ = __float__ = __index__ = _unknown


class Quantifier(StrEnum):
    SOME = "some"
    EVERY = "every"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: Op
    value: Any


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Filter


@dataclass(frozen=True, slots=True)
class RelationFilter:
    """Rows whose related rows (some, every or none of them) match `where`."""

    relation: Relation
    target: EntityMetadata
    quantifier: Quantifier
    where: Filter


Filter = Compare | And | Or | Not | RelationFilter


@dataclass(frozen=True, slots=True)
class OrderTerm:
    field: str
    descending: bool = False
    nulls_first: bool = False

    def reversed(self) -> OrderTerm:
        return OrderTerm(self.field, not self.descending, not self.nulls_first)


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Relay arguments, with cursors already decoded into keyset values."""

    first: int | None = None
    after: tuple[Any, ...] | None = None
    last: int | None = None
    before: tuple[Any, ...] | None = None

    @property
    def backwards(self) -> bool:
        return self.last is not None and self.first is None

    @property
    def has_cursor(self) -> bool:
        return self.after is not None or self.before is not None

    @property
    def limit(self) -> int:
        size = self.last if self.backwards else self.first
        assert size is not None
        return size


@dataclass(frozen=True)
class QueryPlan:
    entity: EntityMetadata
    columns: tuple[str, ...]
    order: tuple[OrderTerm, ...]
    where: Filter | None = None
    page: PageRequest | None = None
    company: str | None = None
    total: bool = False
    children: tuple[ChildPlan, ...] = ()

    def cost(self) -> int:
        """The most objects the read may return: its page size (one, unpaged) times one
        plus what each row's relations may return. Page sizes multiply down the tree."""
        page = self.page
        rows = 1 if page is None else (page.first if page.first is not None else page.last)
        return max(rows or 0, 1) * (1 + sum(child.plan.cost() for child in self.children))

    def required_columns(self) -> tuple[str, ...]:
        """Selected columns plus what ordering, cursors and child relations need."""
        needed = dict.fromkeys(self.columns)
        needed.update(dict.fromkeys(term.field for term in self.order))
        for child in self.children:
            needed.update(dict.fromkeys(source for source, _ in child.relation.constraints))
        return tuple(needed)


@dataclass(frozen=True)
class ChildPlan:
    """A relation selected under a response key (alias) of the parent rows."""

    key: str
    relation: Relation
    plan: QueryPlan


Row = dict[str, Any]


def child_slot(key: str) -> str:
    """Where a row carries the result of the child plan selected under `key`."""
    return "@" + key


ETAG_SLOT = "@odata.etag"
"""Where a row of an entity with ETags carries its own (no child slot is named so: a
GraphQL response key has no dot)."""


@dataclass
class Connection:
    """One page of rows, with what Relay's pageInfo and totalCount need."""

    rows: list[Row]
    order: Sequence[OrderTerm]
    has_next: bool = False
    has_previous: bool = False
    total: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def page_of(rows: list[Row], plan: QueryPlan, total: int | None) -> Connection:
    """The page from rows fetched with one look-ahead row (in the page's own direction):
    trimmed, in order, with what Relay needs to know of what lies beyond."""
    page = plan.page
    assert page is not None
    more = len(rows) > page.limit
    del rows[page.limit :]
    if page.backwards:
        rows.reverse()
        return Connection(rows, plan.order, page.before is not None, more, total)
    return Connection(rows, plan.order, more, page.after is not None, total)


def with_key_order(entity: EntityMetadata, order: Sequence[OrderTerm]) -> tuple[OrderTerm, ...]:
    """Append the key fields so that ordering, and so cursors, are stable under ties."""
    named = {term.field for term in order}
    tail = tuple(OrderTerm(f.name) for f in entity.key if f.name not in named)
    return (*order, *tail)
