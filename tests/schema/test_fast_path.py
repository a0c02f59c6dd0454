"""The fast read path (JSON built by the store) answers exactly as the generic path.

Hypothesis writes queries (aliases, nested relations, paging both ways, filters,
ordering, pageInfo, edges, __typename) and both paths must return the same JSON, on
PostgreSQL and on SQLite (which builds forward pages without pageInfo or cursors, and
leaves the rest to the generic path), and over an OData service (whose rows are laid
out as the response without field-by-field resolution).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.auth import Role
from tests.conftest import Gateway, start_gateway, start_odata_gateway

CUSTOMER_FIELDS = [
    "customerAccount",
    "organizationName",
    "creditLimit",
    "onHoldStatus",
    "partyType",
    "primaryContactEmail",
    "createdDateTime",
    "dataAreaId",
    "__typename",
]
ORDER_FIELDS = [
    "salesOrderNumber",
    "salesOrderStatus",
    "requestedShippingDate",
    "orderCreationDateTime",
    "customerRequisitionNumber",
    "__typename",
]
LINE_FIELDS = ["inventoryLotId", "lineAmount", "orderedSalesQuantity", "lineNumber", "itemNumber"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "odata"])
def both(
    read_stores: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Gateway, Gateway]]:
    backend = request.param
    if backend == "odata":
        peer = request.getfixturevalue("odata_peer")
        fast, fast_server = start_odata_gateway(tmp_path_factory.mktemp("fast"), peer)
        generic, generic_server = start_odata_gateway(
            tmp_path_factory.mktemp("generic"), peer, fast_reads=False
        )
        yield fast, generic
        for gw, server in ((fast, fast_server), (generic, generic_server)):
            gw.client.close()
            server.stop()
        return
    if backend == "postgresql":
        request.getfixturevalue("pg_admin")
    url = read_stores(backend)
    fast, fast_server = start_gateway(tmp_path_factory.mktemp("fast"), backend, url)
    generic, generic_server = start_gateway(
        tmp_path_factory.mktemp("generic"), backend, url, fast_reads=False
    )
    yield fast, generic
    for gw, server in ((fast, fast_server), (generic, generic_server)):
        gw.client.close()
        server.stop()


names = st.sampled_from(["a", "b", "x1", "y_2"])


@st.composite
def page_args(draw: st.DrawFn, order_fields: list[str]) -> str:
    parts = []
    size = draw(st.integers(0, 6))
    parts.append(f"{draw(st.sampled_from(['first', 'last']))}: {size}")
    if draw(st.booleans()):
        field = draw(st.sampled_from(order_fields))
        direction = draw(st.sampled_from(["ASC", "DESC"]))
        nulls = draw(st.sampled_from(["", ", nulls: FIRST", ", nulls: LAST"]))
        parts.append(f"orderBy: [{{field: {field}, direction: {direction}{nulls}}}]")
    return ", ".join(parts)


@st.composite
def connection(
    draw: st.DrawFn,
    fields: list[str],
    nested: Callable[[], st.SearchStrategy[str]] | None,
    order_fields: list[str],
) -> str:
    def row() -> str:
        chosen = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4, unique=True))
        items = [
            f"{draw(names)}: {f}" if draw(st.booleans()) and f != "__typename" else f
            for f in chosen
        ]
        if nested is not None and draw(st.booleans()):
            items.append(draw(nested()))
        return " ".join(dict.fromkeys(items))

    pieces = []
    for part in draw(
        st.lists(
            st.sampled_from(["nodes", "edges", "pageInfo", "totalCount", "__typename"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    ):
        if part == "nodes":
            pieces.append(f"nodes {{ {row()} }}")
        elif part == "edges":
            pieces.append(f"edges {{ cursor node {{ {row()} }} }}")
        elif part == "pageInfo":
            pieces.append(
                "pageInfo { hasNextPage hasPreviousPage startCursor endCursor __typename }"
            )
        else:
            pieces.append(part)
    return "{ " + " ".join(pieces) + " }"


def lines() -> st.SearchStrategy[str]:
    return st.builds(
        lambda args, body: f"lines({args}) {body}",
        page_args(["LineAmount", "ItemNumber"]),
        connection(LINE_FIELDS, None, []),
    )


def orders() -> st.SearchStrategy[str]:
    return st.builds(
        lambda args, body: f"salesOrders({args}) {body}",
        page_args(["RequestedShippingDate", "CustomerRequisitionNumber", "SalesOrderStatus"]),
        connection(ORDER_FIELDS, lines, ["RequestedShippingDate"]),
    )


@st.composite
def queries(draw: st.DrawFn) -> str:
    args = draw(
        page_args(["CreditLimit", "OrganizationName", "PrimaryContactEmail", "CreatedDateTime"])
    )
    where = draw(
        st.sampled_from(
            [
                "",
                ', where: {creditLimit: {gte: "25000"}}',
                ", where: {salesOrders: {some: {salesOrderStatus: {eq: Invoiced}}}}",
                ", where: {or: [{onHoldStatus: {neq: No}}, {primaryContactEmail: {isNull: true}}]}",
            ]
        )
    )
    body = draw(connection(CUSTOMER_FIELDS, orders, []))
    company = draw(st.sampled_from(['company: "USMF"', 'company: "demf"', "crossCompany: true"]))
    extra = draw(
        st.sampled_from(
            [
                "",
                ' one: customerV3(dataAreaId: "USRT", customerAccount: "RT-000003") '
                "{ customerAccount customerGroup { description __typename } }",
                " __typename",
            ]
        )
    )
    return f"{{ customersV3({company}, {args}{where}) {body}{extra} }}"


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=queries())
def test_fast_and_generic_paths_agree(both: tuple[Gateway, Gateway], query: str) -> None:
    fast, generic = both
    fast_reads = fast.runtime.schemas.current.fast  # type: ignore[union-attr]
    assert fast_reads is not None
    answered = fast_reads.answered
    with fast.count_statements() as counter:
        fast_body = fast.query(query)
    expected = generic.query(query)
    assert fast_body == expected, query
    if "errors" not in expected and _built_by(fast.backend, query):
        assert fast_reads.answered == answered + 1
        if fast.peer is None:
            assert len(counter.statements) == 1  # in one statement


def _built_by(backend: str, query: str) -> bool:
    """Whether the fast path answers this query (SQLite builds no pageInfo, cursors or
    backward pages)."""
    return backend != "sqlite" or not any(word in query for word in ("pageInfo", "cursor", "last:"))


def test_cursors_cross_paths(both: tuple[Gateway, Gateway], tmp_path: Path) -> None:
    """A cursor from one path pages the other: they are the same cursor."""
    fast, generic = both
    query = """query($after: String) { customersV3(company: "USMF", first: 7, after: $after,
        orderBy: [{field: CreatedDateTime, direction: DESC}]) { pageInfo { endCursor } nodes { customerAccount } } }"""
    after = fast.data(query)["customersV3"]["pageInfo"]["endCursor"]
    assert generic.data(query, {"after": after}) == fast.data(query, {"after": after})


def test_variables_bind_into_one_prepared_plan(both: tuple[Gateway, Gateway]) -> None:
    """A comparison's operand is a parameter of the prepared statement: new values reuse
    the plan. What shapes the plan (a page size) or is checked while planning (a
    company) keys it instead. An OData request carries every value in its URL: there
    each value set is a plan of its own, and the answers agree all the same."""
    fast, generic = both
    reads = fast.runtime.schemas.current.fast  # type: ignore[union-attr]
    assert reads is not None
    query = """query($min: Decimal, $group: String, $since: DateTime, $n: Int!) {
        customersV3(company: "USMF", first: $n, where: {creditLimit: {gte: $min},
          customerGroupId: {eq: $group}, createdDateTime: {gt: $since}}) {
          totalCount nodes { customerAccount creditLimit customerGroupId createdDateTime } } }"""
    before = len(reads._prepared)
    answered = reads.answered
    values = [
        ("0", "10", "2000-01-01T00:00:00Z"),
        ("25000", "10", "2001-06-01T12:00:00+02:00"),
        ("5000.5", "20", "1999-12-31T23:59:59Z"),
        ("100000", "30", "2000-01-01T00:00:00Z"),
    ]
    for low, group, since in values:
        variables = {"min": low, "group": group, "since": since, "n": 4}
        assert fast.query(query, variables) == generic.query(query, variables)
    if fast.peer is None:
        assert len(reads._prepared) == before + 1
    assert reads.answered == answered + len(values)

    # a null operand is no slot (the plan refuses it, and the generic path says why)
    variables = {"min": None, "group": "10", "since": None, "n": 4}
    assert fast.query(query, variables) == generic.query(query, variables)
    # a page size keys the plan
    for n in (1, 2):
        variables = {"min": "0", "group": "10", "since": values[0][2], "n": n}
        assert fast.query(query, variables) == generic.query(query, variables)
    # a bad value is reported by the generic path, as for any other query
    bad = {"min": "lots", "group": "10", "since": values[0][2], "n": 4}
    assert fast.query(query, bad) == generic.query(query, bad)
    assert "errors" in generic.query(query, bad)

    # a company from a variable is checked while planning: each value has its plan
    by_company = """query($c: String!, $group: String) { customersV3(company: $c, first: 3,
        where: {customerGroupId: {eq: $group}}) { nodes { customerAccount dataAreaId } } }"""
    for company in ("USMF", "DEMF", "usrt"):
        variables = {"c": company, "group": "10"}
        assert fast.query(by_company, variables) == generic.query(by_company, variables)
    reader_of_usmf = fast.token(Role.READER, companies=["USMF"])
    denied = fast.query(by_company, {"c": "DEMF", "group": "10"}, token=reader_of_usmf)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
