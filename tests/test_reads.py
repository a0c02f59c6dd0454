"""Reads through virtual entities, on SQLite and PostgreSQL, over real HTTP."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from tests.conftest import Gateway, run_sql

CUSTOMERS = """
query($first: Int, $after: String, $last: Int, $before: String, $order: [CustomerV3OrderBy!], $where: CustomerV3Filter) {
  customersV3(company: "USMF", first: $first, after: $after, last: $last, before: $before,
              orderBy: $order, where: $where) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { customerAccount creditLimit organizationName } }
  }
}"""


def accounts(data: dict) -> list[str]:
    return [e["node"]["customerAccount"] for e in data["customersV3"]["edges"]]


def test_connection_reads_selected_fields_in_company(gateway: Gateway) -> None:
    data = gateway.data(
        '{ customersV3(company: "USMF", first: 3) { totalCount nodes { customerAccount dataAreaId '
        "onHoldStatus partyType creditLimit createdDateTime } } }"
    )
    page = data["customersV3"]
    assert page["totalCount"] == 50
    assert [n["customerAccount"] for n in page["nodes"]] == ["US-000001", "US-000002", "US-000003"]
    node = page["nodes"][0]
    assert node["dataAreaId"] == "usmf"
    assert node["onHoldStatus"] in {"No", "Invoice", "All", "Payment"}
    assert node["partyType"] in {"Organization", "Person"}
    assert Decimal(node["creditLimit"]) == Decimal(node["creditLimit"]).quantize(Decimal("0.01"))
    assert node["createdDateTime"].endswith("+00:00")


def test_company_is_required_and_checked(gateway: Gateway) -> None:
    error = gateway.error("{ customersV3 { totalCount } }")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "company" in error["message"] and "crossCompany" in error["message"]
    error = gateway.error('{ customersV3(company: "XXXX") { totalCount } }')
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "unknown legal entity 'XXXX'" in error["message"] and "USMF" in error["message"]
    cross = gateway.data("{ customersV3(crossCompany: true) { totalCount } }")
    assert cross["customersV3"]["totalCount"] == 100
    legal = gateway.data("{ legalEntities { nodes { legalEntityId name } } }")
    assert {n["legalEntityId"] for n in legal["legalEntities"]["nodes"]} == {"USMF", "USRT", "DEMF"}


def test_forward_and_backward_paging_covers_every_row_once(gateway: Gateway) -> None:
    order = [{"field": "CreditLimit", "direction": "DESC"}, {"field": "OrganizationName"}]
    everything = accounts(gateway.data(CUSTOMERS, {"first": 1000, "order": order}))
    assert len(everything) == 50
    seen, after = [], None
    while True:
        data = gateway.data(CUSTOMERS, {"first": 7, "after": after, "order": order})
        seen += accounts(data)
        info = data["customersV3"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert seen == everything
    back, before = [], None
    while True:
        data = gateway.data(CUSTOMERS, {"last": 9, "before": before, "order": order})
        back = accounts(data) + back
        info = data["customersV3"]["pageInfo"]
        if not info["hasPreviousPage"]:
            break
        before = info["startCursor"]
    assert back == everything


def test_ordering_with_nulls_and_ties_is_stable(gateway: Gateway) -> None:
    query = """{ customersV3(company: "USMF", first: 100,
        orderBy: [{field: PrimaryContactEmail, direction: ASC, nulls: FIRST}]) {
        nodes { primaryContactEmail customerAccount } } }"""
    nodes = gateway.data(query)["customersV3"]["nodes"]
    emails = [n["primaryContactEmail"] for n in nodes]
    nulls = [e for e in emails if e is None]
    assert emails[: len(nulls)] == nulls
    rest = emails[len(nulls) :]
    assert rest == sorted(rest)


def test_filters(gateway: Gateway) -> None:
    def count(where: dict) -> int:
        data = gateway.data(CUSTOMERS, {"first": 1000, "where": where})
        return len(data["customersV3"]["edges"])

    total = count({})
    high = count({"creditLimit": {"gte": "50000"}})
    low = count({"creditLimit": {"lt": "50000"}})
    assert high + low == total and 0 < high < total
    assert count({"not": {"creditLimit": {"gte": "50000"}}}) == low
    assert (
        count({"or": [{"creditLimit": {"gte": "50000"}}, {"creditLimit": {"lt": "50000"}}]})
        == total
    )
    assert count({"customerAccount": {"in": ["US-000001", "US-000002", "NOPE"]}}) == 2
    assert count({"customerAccount": {"nin": ["US-000001"]}}) == total - 1
    assert count({"customerAccount": {"startsWith": "us-00000"}}) == 9
    assert count({"organizationName": {"contains": "%"}}) == 0  # wildcards are literal
    nulls = count({"primaryContactEmail": {"isNull": True}})
    assert nulls + count({"primaryContactEmail": {"isNull": False}}) == total
    assert count({"onHoldStatus": {"eq": "No"}}) + count({"onHoldStatus": {"neq": "No"}}) == total


def test_dates_decimals_and_enums_keep_their_values(gateway: Gateway) -> None:
    query = """{ salesOrderHeadersV2(company: "USMF", first: 200,
        where: {requestedShippingDate: {gte: "2025-06-01", lt: "2025-07-01"},
                salesOrderStatus: {in: [Invoiced, Delivered]}}) {
        nodes { requestedShippingDate orderCreationDateTime salesOrderStatus
                lines(first: 50) { nodes { salesPrice orderedSalesQuantity lineAmount } } } } }"""
    nodes = gateway.data(query)["salesOrderHeadersV2"]["nodes"]
    assert nodes
    for order in nodes:
        assert "2025-06-01" <= order["requestedShippingDate"] < "2025-07-01"
        assert order["salesOrderStatus"] in {"Invoiced", "Delivered"}
        assert order["orderCreationDateTime"].endswith("+00:00")
        for line in order["lines"]["nodes"]:
            price, quantity = Decimal(line["salesPrice"]), Decimal(line["orderedSalesQuantity"])
            assert Decimal(line["lineAmount"]) == (price * quantity).quantize(Decimal("0.01"))
            assert len(line["salesPrice"].split(".")[1]) == 2
            assert len(line["orderedSalesQuantity"].split(".")[1]) == 4


def test_filter_across_relations(gateway: Gateway) -> None:
    query = """{ customersV3(company: "USMF", first: 1000,
        where: {salesOrders: {some: {lines: {some: {lineAmount: {gt: "10000"}}}}}}) {
        nodes { customerAccount salesOrders(first: 100) { nodes { lines(first: 10) { nodes { lineAmount } } } } } } }"""
    nodes = gateway.data(query)["customersV3"]["nodes"]
    assert nodes
    for customer in nodes:
        amounts = [
            Decimal(line["lineAmount"])
            for order in customer["salesOrders"]["nodes"]
            for line in order["lines"]["nodes"]
        ]
        assert max(amounts) > 10000
    none_query = """{ customersV3(company: "USMF", first: 1000,
        where: {salesOrders: {none: {salesOrderStatus: {eq: Invoiced}}}}) { totalCount } }"""
    some_query = """{ customersV3(company: "USMF", first: 1000,
        where: {salesOrders: {some: {salesOrderStatus: {eq: Invoiced}}}}) { totalCount } }"""
    none_count = gateway.data(none_query)["customersV3"]["totalCount"]
    some_count = gateway.data(some_query)["customersV3"]["totalCount"]
    assert none_count + some_count == 50
    to_one = """{ salesOrderHeadersV2(company: "USMF", first: 5,
        where: {customer: {customerGroupId: {eq: "10"}}}) { nodes { customer { customerGroupId } } } }"""
    for order in gateway.data(to_one)["salesOrderHeadersV2"]["nodes"]:
        assert order["customer"]["customerGroupId"] == "10"


def test_relations_both_ways_one_statement_per_level(gateway: Gateway) -> None:
    query = """{ customersV3(company: "USMF", first: 20) {
        nodes { customerAccount customerGroup { description }
          salesOrders(first: 5) { totalCount nodes { salesOrderNumber
            customer { customerAccount }
            lines(first: 5) { nodes { itemNumber product { productName } } } } } } } }"""
    with gateway.count_statements() as counter:
        data = gateway.data(query)
    # fast path: one statement; generic: customers, groups, orders, order → customer,
    # lines, products
    if gateway.peer is None:
        assert len(counter.statements) == (1 if gateway.fast else 6), counter.statements
    else:
        assert requests_per_level(counter.statements) == requests_needed(data), counter.statements
    for customer in data["customersV3"]["nodes"]:
        assert customer["customerGroup"]["description"]
        orders = customer["salesOrders"]
        assert len(orders["nodes"]) <= 5 and orders["totalCount"] >= len(orders["nodes"])
        for order in orders["nodes"]:
            assert order["customer"]["customerAccount"] == customer["customerAccount"]
            assert 1 <= len(order["lines"]["nodes"]) <= 5
            for line in order["lines"]["nodes"]:
                assert line["product"]["productName"]


def requests_per_level(requests: list[str]) -> dict[str, int]:
    """Requests an OData service received, by entity set, its next-link pages left out."""
    counted: dict[str, int] = {}
    for request in requests:
        if "$skiptoken" not in request:
            entity_set = urlsplit(request).path.rsplit("/", 1)[-1]
            counted[entity_set] = counted.get(entity_set, 0) + 1
    return counted


def requests_needed(data: dict) -> dict[str, int]:
    """F&O expands one level: customers come with their groups and orders; below, each
    level is one request per 40 parents (order → customer, lines, line → product)."""
    orders = [o for c in data["customersV3"]["nodes"] for o in c["salesOrders"]["nodes"]]
    items = {line["itemNumber"] for o in orders for line in o["lines"]["nodes"]}
    customers = {o["customer"]["customerAccount"] for o in orders}
    return {
        "CustomersV3": 1 + -(-len(customers) // 40),
        "SalesOrderLines": -(-len(orders) // 40),
        "ReleasedProductsV2": -(-len(items) // 40),
    }


def test_only_selected_columns_are_fetched(gateway: Gateway) -> None:
    with gateway.count_statements() as counter:
        gateway.data('{ customersV3(company: "USMF", first: 2) { nodes { organizationName } } }')
    (statement,) = counter.statements
    if gateway.peer is not None:  # an OData request: $select names the fields, keys too
        (selected,) = parse_qs(urlsplit(statement).query)["$select"]
        assert selected.split(",") == ["dataAreaId", "CustomerAccount", "OrganizationName"]
        return
    statement = statement.split("FROM custcustomerv3entity")[0]  # the page's own columns
    assert "organizationname" in statement
    assert "creditlimit" not in statement and "deliveryaddressstreet" not in statement


def test_by_key_and_aliases(gateway: Gateway) -> None:
    data = gateway.data(
        """{ a: customerV3(dataAreaId: "USMF", customerAccount: "US-000001") {
              customerAccount few: salesOrders(first: 1) { nodes { salesOrderNumber } }
              many: salesOrders(first: 3) { nodes { salesOrderNumber } } }
            missing: customerV3(dataAreaId: "usmf", customerAccount: "NOPE") { customerAccount } }"""
    )
    assert data["a"]["customerAccount"] == "US-000001"
    assert len(data["a"]["few"]["nodes"]) <= 1
    assert data["a"]["many"]["nodes"][: len(data["a"]["few"]["nodes"])] == data["a"]["few"]["nodes"]
    assert data["missing"] is None


def test_fragments_and_directives_are_planned(gateway: Gateway) -> None:
    query = """query($skip: Boolean!) { customersV3(company: "USMF", first: 2) { nodes { ...C } } }
        fragment C on CustomerV3 { customerAccount ... on CustomerV3 { creditLimit }
          salesOrders(first: 1) @skip(if: $skip) { nodes { salesOrderNumber } } }"""
    shown = gateway.data(query, {"skip": False})["customersV3"]["nodes"][0]
    hidden = gateway.data(query, {"skip": True})["customersV3"]["nodes"][0]
    assert "salesOrders" in shown and "creditLimit" in shown
    assert "salesOrders" not in hidden


def test_bad_input_gets_codes_not_500(gateway: Gateway) -> None:
    cases = {
        '{ customersV3(company: "USMF", first: 100000) { totalCount } }': (
            "LIMIT_EXCEEDED",
            "GATEWAY_MAX_PAGE_SIZE",
        ),
        '{ customersV3(company: "USMF", after: "garbage!") { totalCount } }': (
            "BAD_USER_INPUT",
            "cursor",
        ),
        '{ customersV3(company: "USMF", first: -1) { totalCount } }': (
            "BAD_USER_INPUT",
            "zero or more",
        ),
        '{ customersV3(company: "USMF", first: 1, last: 1) { totalCount } }': (
            "BAD_USER_INPUT",
            "not both",
        ),
        '{ customersV3(company: "USMF", where: {creditLimit: {gt: "lots"}}) { totalCount } }': (
            "GRAPHQL_VALIDATION_FAILED",
            "Decimal",
        ),
        '{ customersV3(company: "USMF") { nodes { nope } } }': (
            "GRAPHQL_VALIDATION_FAILED",
            "nope",
        ),
    }
    for query, (code, words) in cases.items():
        headers = {"Authorization": f"Bearer {gateway.reader}"}
        response = gateway.client.post("/graphql", json={"query": query}, headers=headers)
        assert response.status_code == 200, response.text
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == code, (query, error)
        assert words in error["message"], (query, error)


def test_cursor_from_another_ordering_is_refused(gateway: Gateway) -> None:
    data = gateway.data(CUSTOMERS, {"first": 1})
    cursor = data["customersV3"]["pageInfo"]["endCursor"]
    body = gateway.query(
        CUSTOMERS, {"first": 1, "after": cursor, "order": [{"field": "CreditLimit"}]}
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "another ordering" in body["errors"][0]["message"]


def test_a_row_written_straight_into_the_store_is_read_through(fresh_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = fresh_gateway()
    query = '{ customerV3(dataAreaId: "USMF", customerAccount: "ZZ-1") { organizationName creditLimit } }'
    assert gw.data(query)["customerV3"] is None
    run_sql(
        gw.fno_url,
        "INSERT INTO custcustomerv3entity (dataareaid, customeraccount, organizationname, partytype,"
        " customergroupid, creditlimit, creditlimitismandatory, salescurrencycode, onholdstatus)"
        " VALUES ('usmf', 'ZZ-1', 'Written Directly Ltd', 2, '10', 1234.5, 0, 'USD', 0)",
    )
    assert gw.data(query)["customerV3"] == {
        "organizationName": "Written Directly Ltd",
        "creditLimit": "1234.50",
    }
