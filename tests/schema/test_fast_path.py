"""The fast read path (JSON built by PostgreSQL) answers exactly as the generic path.

Hypothesis writes queries (aliases, nested relations, paging both ways, filters,
ordering, pageInfo, edges, __typename) and both paths must return the same JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Gateway, start_gateway

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


@pytest.fixture(scope="module")
def both(
    read_stores: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Gateway, Gateway]]:
    request.getfixturevalue("pg_admin")
    url = read_stores("postgresql")
    fast, fast_server = start_gateway(tmp_path_factory.mktemp("fast"), "postgresql", url)
    generic, generic_server = start_gateway(
        tmp_path_factory.mktemp("generic"), "postgresql", url, fast_reads=False
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
    if "errors" not in expected:  # answered by the fast path, in one statement
        assert fast_reads.answered == answered + 1
        assert len(counter.statements) == 1


def test_cursors_cross_paths(both: tuple[Gateway, Gateway], tmp_path: Path) -> None:
    """A cursor from one path pages the other: they are the same cursor."""
    fast, generic = both
    query = """query($after: String) { customersV3(company: "USMF", first: 7, after: $after,
        orderBy: [{field: CreatedDateTime, direction: DESC}]) { pageInfo { endCursor } nodes { customerAccount } } }"""
    after = fast.data(query)["customersV3"]["pageInfo"]["endCursor"]
    assert generic.data(query, {"after": after}) == fast.data(query, {"after": after})
