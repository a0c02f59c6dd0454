"""The datasource contract, checked against a model on every kind of store: SQLite,
PostgreSQL, and an OData service (odatapy serving F&O-shaped metadata) in F&O's
dialect and in the standard one.

A hypothesis-generated filter and ordering runs in the store and, over the same
rows, in plain Python with SQL's three-valued logic; paging through the store's
answer must give exactly the model's rows in the model's order.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasources.odata.endpoint import Endpoint
from datasources.odata.source import ODataSource
from datasources.sql.engine import create_engine
from datasources.sql.source import SqlDataSource
from gateway.kernel.catalog import resolve_catalog
from gateway.kernel.cursor import decode_cursor, encode_cursor
from gateway.kernel.plan import (
    And,
    ChildPlan,
    Compare,
    Filter,
    Not,
    Op,
    Or,
    OrderTerm,
    PageRequest,
    Quantifier,
    QueryPlan,
    RelationFilter,
    with_key_order,
)
from tests.conftest import BACKENDS, Databases, build_store, odata_url
from tests.peers.odata.peer import start as start_peer

FIELDS = (
    "CustomerAccount",
    "OrganizationName",
    "CreditLimit",
    "OnHoldStatus",
    "PrimaryContactEmail",
    "PrimaryContactPhone",
    "CustomerGroupId",
)


class Store:
    def __init__(self, source: SqlDataSource | ODataSource) -> None:
        self.loop = asyncio.new_event_loop()
        self.source = source
        self.catalog = resolve_catalog(self.run(self.source.published_entities()))
        self.customer = self.catalog.entity("CustomerV3")
        everything = self.fetch(
            QueryPlan(
                self.customer,
                FIELDS,
                with_key_order(self.customer, []),
                company="usmf",
                page=PageRequest(first=10_000),
            )
        )
        self.rows = everything.rows

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def fetch(self, plan: QueryPlan) -> Any:
        return self.run(self.source.fetch(plan))

    def close(self) -> None:
        self.run(self.source.close())
        self.loop.close()


ODATA = ["odata-fno", "odata-standard"]


@pytest.fixture(scope="module", params=[*BACKENDS, *ODATA])
def store(request: pytest.FixtureRequest, databases: Databases) -> Iterator[Store]:
    if request.param in BACKENDS:
        url = databases.new(request.param)
        build_store(url)
        opened = Store(SqlDataSource(create_engine(url)))
        yield opened
        opened.close()
        return
    seed = databases.new("sqlite")
    build_store(seed)
    with start_peer(seed, page_size=40) as peer:
        dialect = request.param.removeprefix("odata-")
        opened = Store(ODataSource(Endpoint.parse(odata_url(peer, dialect))))
        yield opened
        opened.close()


# --- the model: SQL semantics in Python ---------------------------------------------------


def evaluate(where: Filter, row: dict[str, Any]) -> bool | None:
    if isinstance(where, And):
        values = [evaluate(f, row) for f in where.items]
        return False if False in values else None if None in values else True
    if isinstance(where, Or):
        values = [evaluate(f, row) for f in where.items]
        return True if True in values else None if None in values else False
    if isinstance(where, Not):
        value = evaluate(where.item, row)
        return None if value is None else not value
    assert isinstance(where, Compare)
    column = row[where.field]
    if where.op is Op.IS_NULL:
        return (column is None) == where.value
    if column is None:
        return None
    value = where.value
    match where.op:
        case Op.EQ:
            return column == value
        case Op.NEQ:
            return column != value
        case Op.GT:
            return column > value
        case Op.GTE:
            return column >= value
        case Op.LT:
            return column < value
        case Op.LTE:
            return column <= value
        case Op.IN:
            return column in value
        case Op.NIN:
            return column not in value
        case Op.CONTAINS:
            return value.lower() in column.lower()
        case Op.STARTS_WITH:
            return column.lower().startswith(value.lower())
    raise AssertionError(where.op)


def model_order(order: tuple[OrderTerm, ...]) -> Any:
    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        for term in order:
            x, y = a[term.field], b[term.field]
            if x == y:
                continue
            if x is None or y is None:
                first = x is None
                return -1 if first == term.nulls_first else 1
            result = -1 if x < y else 1
            return -result if term.descending else result
        return 0

    return functools.cmp_to_key(compare)


# --- strategies --------------------------------------------------------------------------

TEXT = st.text(alphabet="abcdefgoruwASW %_-'0", max_size=4)


def compares(rows: list[dict[str, Any]]) -> st.SearchStrategy[Filter]:
    def values(field: str) -> st.SearchStrategy[Any]:
        seen = [r[field] for r in rows if r[field] is not None]
        if field == "CreditLimit":
            return st.sampled_from(seen) | st.decimals(0, 300_000, places=2).map(Decimal)
        if field == "OnHoldStatus":
            return st.integers(0, 5)
        return st.sampled_from(seen) | TEXT

    def compare(field: str) -> st.SearchStrategy[Filter]:
        ops = [Op.EQ, Op.NEQ, Op.GT, Op.GTE, Op.LT, Op.LTE]
        if field == "OnHoldStatus":  # enums are matched by member, as the schema offers
            ops = [Op.EQ, Op.NEQ]
        single = st.builds(Compare, st.just(field), st.sampled_from(ops), values(field))
        multi = st.builds(
            Compare,
            st.just(field),
            st.sampled_from([Op.IN, Op.NIN]),
            st.lists(values(field), min_size=1, max_size=4).map(tuple),
        )
        null = st.builds(Compare, st.just(field), st.just(Op.IS_NULL), st.booleans())
        options = single | multi | null
        if field not in ("CreditLimit", "OnHoldStatus"):
            options |= st.builds(
                Compare, st.just(field), st.sampled_from([Op.CONTAINS, Op.STARTS_WITH]), TEXT
            )
        return options

    return st.sampled_from(FIELDS).flatmap(compare)


def filters(rows: list[dict[str, Any]]) -> st.SearchStrategy[Filter]:
    return st.recursive(
        compares(rows),
        lambda inner: (
            st.lists(inner, min_size=1, max_size=3).map(lambda f: And(tuple(f)))
            | st.lists(inner, min_size=1, max_size=3).map(lambda f: Or(tuple(f)))
            | inner.map(Not)
        ),
        max_leaves=6,
    )


ORDERS = st.lists(
    st.builds(OrderTerm, st.sampled_from(FIELDS[1:]), st.booleans(), st.booleans()),
    max_size=3,
    unique_by=lambda t: t.field,
)


def orders(store: Store) -> st.SearchStrategy[list[OrderTerm]]:
    """odatapy sorts enums by member name, where F&O and the SQL stores sort by value."""
    if isinstance(store.source, ODataSource):
        return ORDERS.filter(lambda terms: all(t.field != "OnHoldStatus" for t in terms))
    return ORDERS


# --- properties ---------------------------------------------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_filters_and_keyset_paging_match_the_model(store: Store, data: st.DataObject) -> None:
    where = data.draw(filters(store.rows), label="where")
    order = with_key_order(store.customer, data.draw(orders(store), label="order"))
    size = data.draw(st.integers(1, 40), label="page size")
    expected = sorted((r for r in store.rows if evaluate(where, r) is True), key=model_order(order))

    got: list[dict[str, Any]] = []
    after = None
    while True:
        plan = QueryPlan(
            store.customer,
            FIELDS,
            order,
            where=where,
            company="usmf",
            total=True,
            page=PageRequest(first=size, after=after),
        )
        page = store.fetch(plan)
        assert page.total == len(expected)
        got += page.rows
        if not page.has_next:
            break
        cursor = encode_cursor(order, page.rows[-1])
        after = decode_cursor(cursor, store.customer, order)
    assert [r["CustomerAccount"] for r in got] == [r["CustomerAccount"] for r in expected]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), size=st.integers(1, 30), backwards=st.booleans())
def test_paging_in_both_directions_matches_the_model(
    store: Store, data: st.DataObject, size: int, backwards: bool
) -> None:
    terms = with_key_order(store.customer, data.draw(orders(store), label="order"))
    expected = sorted(store.rows, key=model_order(terms))
    got: list[dict[str, Any]] = []
    cursor = None
    while True:
        page_request = (
            PageRequest(last=size, before=cursor)
            if backwards
            else PageRequest(first=size, after=cursor)
        )
        page = store.fetch(
            QueryPlan(store.customer, FIELDS, terms, company="usmf", page=page_request)
        )
        got = page.rows + got if backwards else got + page.rows
        if not (page.has_previous if backwards else page.has_next):
            break
        edge = page.rows[0] if backwards else page.rows[-1]
        cursor = decode_cursor(encode_cursor(terms, edge), store.customer, terms)
    assert [r["CustomerAccount"] for r in got] == [r["CustomerAccount"] for r in expected]


def test_children_are_paged_per_parent_in_one_statement_per_level(store: Store) -> None:
    catalog = store.catalog
    header, line = catalog.entity("SalesOrderHeaderV2"), catalog.entity("SalesOrderLine")
    lines = QueryPlan(
        line,
        ("LineAmount",),
        with_key_order(line, [OrderTerm("LineAmount", True)]),
        page=PageRequest(first=2),
        total=True,
    )
    orders = QueryPlan(
        header,
        ("SalesOrderNumber",),
        with_key_order(header, []),
        page=PageRequest(first=3),
        total=True,
        children=(ChildPlan("lines", header.relation("Lines"), lines),),
    )
    plan = QueryPlan(
        store.customer,
        ("CustomerAccount",),
        with_key_order(store.customer, []),
        company="usmf",
        page=PageRequest(first=30),
        children=(ChildPlan("orders", store.customer.relation("SalesOrders"), orders),),
    )
    page = store.fetch(plan)
    checked = 0
    for customer in page.rows:
        connection = customer["@orders"]
        assert len(connection.rows) == min(3, connection.total)
        assert connection.has_next == (connection.total > 3)
        for order in connection.rows:
            amounts = [r["LineAmount"] for r in order["@lines"].rows]
            assert amounts == sorted(amounts, reverse=True)
            assert len(amounts) == min(2, order["@lines"].total)
            checked += 1
    assert checked > 0


def test_relation_quantifiers(store: Store) -> None:
    header = store.catalog.entity("SalesOrderHeaderV2")
    relation = store.customer.relation("SalesOrders")
    invoiced = Compare("SalesOrderStatus", Op.EQ, 3)

    def count(quantifier: Quantifier) -> int:
        where = RelationFilter(relation, header, quantifier, invoiced)
        plan = QueryPlan(
            store.customer,
            ("CustomerAccount",),
            with_key_order(store.customer, []),
            where=where,
            company="usmf",
            page=PageRequest(first=1),
            total=True,
        )
        total = store.fetch(plan).total
        assert total is not None
        return total

    some, none, every = count(Quantifier.SOME), count(Quantifier.NONE), count(Quantifier.EVERY)
    assert some + none == len(store.rows)
    assert every >= none  # customers with no orders satisfy "every" vacuously
    assert 0 < some < len(store.rows)
