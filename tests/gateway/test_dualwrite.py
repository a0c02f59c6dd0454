"""Dual-write through GraphQL only, on SQLite and PostgreSQL: the maps the dual-write
application installs, running them, the seed's two scenarios, and writes that one
side refuses leaving both sides unchanged."""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from gateway.auth import Role
from gateway.kernel.change import Change, ChangeKind
from gateway.kernel.dual_write_maps import OUT_OF_THE_BOX_MAPS
from gateway.kernel.dualwrite import MapState, Side
from tests.conftest import Gateway, run_sql, sql_value
from tests.gateway.test_setup import admin, new_environment, setup, wait_until

CUSTOMERS = "Customers V3 (accounts)"
CUSTOMER = """
mutation($input: CustomerV3CreateInput!) { createCustomerV3(input: $input) { customerAccount } }
"""
READ_CUSTOMER = """
query($a: String!) { customerV3(dataAreaId: "USMF", customerAccount: $a) {
  creditLimit deliveryAddressStreet deliveryAddressCity invoiceAddressStreet invoiceAddressCity
  customerGroupId recVersion } }
"""
ACCOUNT = """
query($a: String!) { accounts(where: {accountnumber: {eq: $a}}) {
  nodes { accountid name msdyn_company creditlimit address1_city emailaddress1 statecode } } }
"""
UPDATE_ACCOUNT = """
mutation($id: String!, $input: accountUpdateInput!) {
  updateAccount(accountid: $id, input: $input) { creditlimit versionnumber } }
"""


def customer(account: str, **fields: Any) -> dict[str, Any]:
    return {
        "dataAreaId": "USMF",
        "customerAccount": account,
        "organizationName": f"Customer {account}",
        "partyType": "Organization",
        "customerGroupId": "10",
        "salesCurrencyCode": "USD",
        "creditLimitIsMandatory": "No",
        "onHoldStatus": "No",
        "creditLimit": "2000",
        **fields,
    }


def run_customers(gw: Gateway, writer: str) -> None:
    """Run the customers map (and its dependencies), then bring USMF to Dataverse by
    touching the legal entity: with no initial sync, a row travels when it is written."""
    gw.data(f'mutation {{ runDualWriteMap(name: "{CUSTOMERS}") {{ name }} }}', token=admin(gw))
    gw.data(
        'mutation { updateLegalEntity(legalEntityId: "USMF", input: {name: "Contoso USA"}) '
        "{ name } }",
        token=writer,
    )
    companies = gw.data("{ cdm_companies { nodes { cdm_companycode cdm_name } } }")
    assert companies["cdm_companies"]["nodes"] == [
        {"cdm_companycode": "USMF", "cdm_name": "Contoso USA"}
    ]


def wait_for(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return found


@pytest.fixture
def linked(control_plane: Callable[..., Gateway]) -> Gateway:
    """A gateway whose F&O environment is linked, with the dual-write application."""
    return link(control_plane(sync_batch=4, queue_alert=3))  # several batches per company


def link(gw: Gateway) -> Gateway:
    """Link the gateway's F&O environment and install the dual-write application."""
    env = new_environment(gw)
    assert "errors" not in setup(gw, env, ", template: STANDARD_WITH_DUAL_WRITE")
    wait_until(gw, env, "COMPLETED")
    gw.data(
        "mutation($e: String!) { installDualWriteApplication(environment: $e) { state } }",
        {"e": env},
        token=admin(gw),
    )

    def installed() -> bool:
        found = gw.data(
            "query($e: String!) { addInInstallations(environment: $e) { state } }", {"e": env}
        )["addInInstallations"]
        return found == [{"state": "INSTALLED"}]

    wait_for(installed)
    wait_for(lambda: "errors" not in gw.query("{ dualWriteMaps { name } accounts { totalCount } }"))
    return gw


def test_maps_run_with_their_dependencies(linked: Gateway) -> None:
    gw = linked
    maps = gw.data("{ dualWriteMaps { name state problems { code } availableActions } }")
    by_name = {m["name"]: m for m in maps["dualWriteMaps"]}
    assert len(by_name) == 5 and all(m["state"] == "NOT_RUNNING" for m in by_name.values())
    assert by_name[CUSTOMERS]["problems"] == [] and by_name[CUSTOMERS]["availableActions"] == [
        "RUN"
    ]
    assert (
        gw.error(f'mutation {{ runDualWriteMap(name: "{CUSTOMERS}") {{ name }} }}')["extensions"][
            "code"
        ]
        == "FORBIDDEN"
    )
    ran = gw.data(
        f'mutation {{ runDualWriteMap(name: "{CUSTOMERS}") {{ name state }} }}', token=admin(gw)
    )["runDualWriteMap"]
    assert {m["name"]: m["state"] for m in ran} == {
        "Legal entities (cdm_companies)": "RUNNING",
        "Customer groups (msdyn_customergroups)": "RUNNING",
        CUSTOMERS: "RUNNING",
    }


def test_lookups_name_the_row_on_the_other_side(linked: Gateway) -> None:
    """Sales orders name their customer by account number in F&O and by the account's
    row id in Dataverse; an order whose customer is not an account is refused, logged."""
    gw = linked
    orders = "Sales order headers (salesorders)"
    gw.data(
        f'mutation {{ runDualWriteMap(name: "{orders}", initialSync: true, master: FNO) '
        "{ name } }",
        token=admin(gw),
    )

    def settled() -> dict[str, Any] | None:
        maps = gw.data("{ dualWriteMaps { name state errorCount errors { message } } }")
        ours = next(m for m in maps["dualWriteMaps"] if m["name"] == orders)
        return ours if ours["state"] == "RUNNING" else None

    view = wait_for(settled, 60)
    total = gw.data("{ salesOrderHeadersV2(crossCompany: true) { totalCount } }")
    copied = gw.data(
        "{ salesorders(first: 1) { totalCount nodes { ordernumber customerid msdyn_company } } }"
    )["salesorders"]
    assert copied["totalCount"] + view["errorCount"] == total["salesOrderHeadersV2"]["totalCount"]
    assert copied["totalCount"] > 0 and view["errorCount"] > 0  # persons are not accounts
    assert "customerid: there is no account with accountnumber" in view["errors"][0]["message"]
    order = copied["nodes"][0]
    number = gw.data(
        "query($n: String!, $c: String!) { salesOrderHeaderV2(dataAreaId: $c, "
        "salesOrderNumber: $n) { orderingCustomerAccountNumber } }",
        {"n": order["ordernumber"], "c": order["msdyn_company"]},
    )["salesOrderHeaderV2"]["orderingCustomerAccountNumber"]
    account = gw.data(ACCOUNT, {"a": number})["accounts"]["nodes"]
    assert [a["accountid"] for a in account if a["msdyn_company"] == order["msdyn_company"]] == [
        order["customerid"]
    ]

    # live: an order written in F&O reaches Dataverse naming the account's row id
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    create = (
        "mutation($n: String!, $c: String!, $a: String!) { createSalesOrderHeaderV2(input: {"
        "dataAreaId: $c, salesOrderNumber: $n, orderingCustomerAccountNumber: $a, "
        'currencyCode: "USD", salesOrderStatus: Backorder}) { salesOrderNumber } }'
    )
    company = order["msdyn_company"]
    gw.data(create, {"n": "SO-LIVE-1", "c": company, "a": number}, token=writer)
    live = gw.data(
        '{ salesorders(where: {ordernumber: {eq: "SO-LIVE-1"}}) { nodes { customerid } } }'
    )["salesorders"]["nodes"]
    assert live == [{"customerid": order["customerid"]}]

    # polymorphic: a person customer is a contact in Dataverse, and the order names it
    gw.data(
        CUSTOMER,
        {"input": customer("DW-PC1", dataAreaId=company, partyType="Person")},
        token=writer,
    )
    contact = gw.data(
        'mutation($c: String!) { createContact(input: {contactid: "c-1", lastname: "Ray", '
        'msdyn_contactpersonid: "DW-PC1", msdyn_company: $c}) { contactid } }',
        {"c": company},
        token=writer,
    )["createContact"]
    gw.data(create, {"n": "SO-LIVE-2", "c": company, "a": "DW-PC1"}, token=writer)
    by_contact = gw.data(
        '{ salesorders(where: {ordernumber: {eq: "SO-LIVE-2"}}) { nodes { salesorderid '
        "customerid customer_contact { lastname } } } }"
    )["salesorders"]["nodes"]
    assert by_contact[0]["customerid"] == contact["contactid"]
    assert by_contact[0]["customer_contact"] == {"lastname": "Ray"}
    # and back: an order changed in Dataverse names the person customer in F&O
    gw.data(
        "mutation($id: String!) { updateSalesorder(salesorderid: $id, "
        'input: {name: "Renamed"}) { name } }',
        {"id": by_contact[0]["salesorderid"]},
        token=writer,
    )
    back = gw.data(
        "query($c: String!) { salesOrderHeaderV2(dataAreaId: $c, salesOrderNumber: "
        '"SO-LIVE-2") { salesOrderName orderingCustomerAccountNumber } }',
        {"c": company},
    )["salesOrderHeaderV2"]
    assert back == {"salesOrderName": "Renamed", "orderingCustomerAccountNumber": "DW-PC1"}
    # a customer that is neither an account nor a contact: refused, both tables named
    gw.data(
        CUSTOMER,
        {"input": customer("DW-PC2", dataAreaId=company, partyType="Person")},
        token=writer,
    )
    refused = gw.error(create, {"n": "SO-LIVE-3", "c": company, "a": "DW-PC2"}, token=writer)
    assert "there is no account with accountnumber 'DW-PC2'" in refused["message"]
    assert "and no contact with msdyn_contactpersonid 'DW-PC2'" in refused["message"]


def test_the_seed_scenarios_both_ways(linked: Gateway) -> None:
    gw = linked
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)

    # a customer created in F&O is an account in Dataverse when the mutation returns
    gw.data(CUSTOMER, {"input": customer("DW-1")}, token=writer)
    account = gw.data(ACCOUNT, {"a": "DW-1"})["accounts"]["nodes"]
    assert len(account) == 1
    assert account[0]["msdyn_company"] == "USMF" and account[0]["statecode"] == "Active"
    assert account[0]["creditlimit"].startswith("2000")
    account_id = account[0]["accountid"]

    # (b) a sales representative raises the credit limit from 2,000 to 5,000 in Dataverse
    gw.data(UPDATE_ACCOUNT, {"id": account_id, "input": {"creditlimit": "5000"}}, token=writer)
    assert gw.data(READ_CUSTOMER, {"a": "DW-1"})["customerV3"]["creditLimit"].startswith("5000")

    # (a) a customer service representative changes the shipping and billing address
    address = {
        "address1_line1": "1 Harbour Road",
        "address1_city": "Seattle",
        "address2_line1": "PO Box 12",
        "address2_city": "Redmond",
    }
    gw.data(UPDATE_ACCOUNT, {"id": account_id, "input": address}, token=writer)
    found = gw.data(READ_CUSTOMER, {"a": "DW-1"})["customerV3"]
    assert (found["deliveryAddressStreet"], found["deliveryAddressCity"]) == (
        "1 Harbour Road",
        "Seattle",
    )
    assert (found["invoiceAddressStreet"], found["invoiceAddressCity"]) == ("PO Box 12", "Redmond")
    assert found["recVersion"] == 3  # two carried updates, each one version

    # people are not accounts: the map's filter keeps them out
    gw.data(CUSTOMER, {"input": customer("DW-P", partyType="Person")}, token=writer)
    assert gw.data(ACCOUNT, {"a": "DW-P"})["accounts"]["nodes"] == []

    # deletes are carried too
    gw.data(
        'mutation { deleteCustomerV3(dataAreaId: "USMF", customerAccount: "DW-1") { version } }',
        token=writer,
    )
    assert gw.data(ACCOUNT, {"a": "DW-1"})["accounts"]["nodes"] == []


def test_a_write_the_other_side_refuses_changes_neither(linked: Gateway) -> None:
    gw = linked
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)
    gw.data(CUSTOMER, {"input": customer("DW-2")}, token=writer)
    account_id = gw.data(ACCOUNT, {"a": "DW-2"})["accounts"]["nodes"][0]["accountid"]

    # Dataverse takes an email of at most 100 characters; F&O would take it
    long_email = "x" * 120 + "@contoso.com"
    refused = gw.error(
        CUSTOMER, {"input": customer("DW-3", primaryContactEmail=long_email)}, token=writer
    )
    assert refused["extensions"]["code"] == "BAD_USER_INPUT"
    assert refused["message"].startswith("Dataverse refused the change:")
    assert "emailaddress1" in refused["message"]
    assert gw.data(READ_CUSTOMER, {"a": "DW-3"})["customerV3"] is None  # F&O rolled back
    activity = gw.data("{ dualWriteMaps { name activity { kind message } } }")["dualWriteMaps"]
    refusals = [
        a["message"]
        for a in next(m for m in activity if m["name"] == CUSTOMERS)["activity"]
        if a["kind"] == "REFUSED"
    ]
    assert refusals and "was undone: Dataverse refused the change" in refusals[0]

    # F&O knows no customer group NOPE: the Dataverse update is refused with F&O's words
    refused = gw.error(
        UPDATE_ACCOUNT,
        {"id": account_id, "input": {"msdyn_customergroupid": "NOPE", "creditlimit": "9"}},
        token=writer,
    )
    assert refused["message"].startswith("F&O refused the change:")
    assert "no CustomerGroup with CustomerGroupId 'NOPE'" in refused["message"]
    account = gw.data(ACCOUNT, {"a": "DW-2"})["accounts"]["nodes"][0]
    assert account["creditlimit"].startswith("2000")  # Dataverse rolled back
    assert gw.data(READ_CUSTOMER, {"a": "DW-2"})["customerV3"]["customerGroupId"] == "10"

    # an account created in Dataverse without a customer group cannot become a customer
    create = gw.error(
        'mutation { createAccount(input: {accountid: "a-1", name: "Lone", '
        'accountnumber: "DV-1", msdyn_company: "USMF", statecode: Active}) { name } }',
        token=writer,
    )
    assert "F&O refused the change" in create["message"] and "CustomerGroupId" in create["message"]
    assert gw.data(ACCOUNT, {"a": "DV-1"})["accounts"]["nodes"] == []

    # stopped, the map carries nothing
    gw.data(f'mutation {{ stopDualWriteMap(name: "{CUSTOMERS}") {{ state }} }}', token=admin(gw))
    gw.data(UPDATE_ACCOUNT, {"id": account_id, "input": {"creditlimit": "7000"}}, token=writer)
    assert gw.data(READ_CUSTOMER, {"a": "DW-2"})["customerV3"]["creditLimit"].startswith("2000")


def test_initial_sync_copies_existing_rows_and_logs_refusals(linked: Gateway) -> None:
    gw = linked
    # one F&O customer has an email Dataverse cannot take: it is refused, the rest copied
    long_email = "y" * 120 + "@contoso.com"
    run_sql(
        gw.fno_url,
        "UPDATE custcustomerv3entity SET primarycontactemail = :e WHERE customeraccount = ("
        "SELECT min(customeraccount) FROM custcustomerv3entity WHERE dataareaid = 'usrt' "
        "AND partytype = 2)",
        params={"e": long_email},
    )
    started = gw.data(
        f'mutation {{ runDualWriteMap(name: "{CUSTOMERS}", initialSync: true, master: FNO) '
        "{ name state } }",
        token=admin(gw),
    )["runDualWriteMap"]
    assert {m["state"] for m in started} <= {"INITIALIZING", "RUNNING"}

    def all_running() -> list[dict[str, Any]] | None:
        maps = gw.data(
            "{ dualWriteMaps { name state errorCount errors { company key message } "
            "initialSync { company copied failed done } } }"
        )["dualWriteMaps"]
        ours = [m for m in maps if m["name"] in {m2["name"] for m2 in started}]
        return ours if all(m["state"] == "RUNNING" for m in ours) else None

    maps = {m["name"]: m for m in wait_for(all_running, 60)}
    customers = gw.data(
        "{ customersV3(crossCompany: true, where: {partyType: {eq: Organization}}) { totalCount } }"
    )["customersV3"]["totalCount"]
    groups = gw.data("{ customerGroups(crossCompany: true) { totalCount } }")["customerGroups"]
    copied = gw.data(
        "{ accounts { totalCount } msdyn_customergroups { totalCount } cdm_companies { totalCount } }"
    )
    assert copied["cdm_companies"]["totalCount"] == 3
    assert copied["msdyn_customergroups"]["totalCount"] == groups["totalCount"]
    assert copied["accounts"]["totalCount"] == customers - 1
    progress = maps[CUSTOMERS]["initialSync"]
    assert [p["company"] for p in progress] == ["DEMF", "USMF", "USRT"]
    assert all(p["done"] for p in progress)
    assert sum(p["copied"] for p in progress) == customers - 1, (progress, customers)
    assert maps[CUSTOMERS]["errorCount"] == 1
    error = maps[CUSTOMERS]["errors"][0]
    assert error["company"] == "USRT" and "emailaddress1" in error["message"]
    assert error["key"]["dataAreaId"] == "usrt"
    activity = gw.data("{ dualWriteMaps { name activity { kind message } } }")["dualWriteMaps"]
    lines = next(m for m in activity if m["name"] == CUSTOMERS)["activity"]
    synced = [a["message"] for a in lines if a["kind"] == "INITIAL_SYNC"]
    assert len(synced) == 3 and any(
        "of USRT from F&O done" in m and "1 refused" in m for m in synced
    )
    assert [a["message"] for a in lines if a["kind"] == "STATE"][:2] == [
        "the map is RUNNING",
        "the map is INITIALIZING",
    ]

    # fixed at the source, only the logged row is copied again
    run_sql(
        gw.fno_url,
        "UPDATE custcustomerv3entity SET primarycontactemail = 'ap@contoso.com' "
        "WHERE primarycontactemail = :e",
        params={"e": long_email},
    )
    retried = gw.data(
        f'mutation {{ retryDualWriteErrors(name: "{CUSTOMERS}") {{ errorCount }} }}',
        token=admin(gw),
    )["retryDualWriteErrors"]
    assert retried == {"errorCount": 0}
    assert gw.data("{ accounts { totalCount } }")["accounts"]["totalCount"] == customers

    # copied again (a second run), existing rows are updated, not duplicated
    gw.data(f'mutation {{ stopDualWriteMap(name: "{CUSTOMERS}") {{ state }} }}', token=admin(gw))
    gw.data(
        f'mutation {{ runDualWriteMap(name: "{CUSTOMERS}", initialSync: true, master: FNO) '
        "{ name } }",
        token=admin(gw),
    )
    wait_for(all_running, 60)
    assert gw.data("{ accounts { totalCount } }")["accounts"]["totalCount"] == customers


def test_a_slow_or_unreachable_other_side_changes_neither(
    control_plane: Callable[..., Gateway],
) -> None:
    gw = control_plane(sync_timeout=1.0)
    env = new_environment(gw)
    assert "errors" not in setup(gw, env, ", template: STANDARD_WITH_DUAL_WRITE")
    wait_until(gw, env, "COMPLETED")
    gw.data(
        "mutation($e: String!) { installDualWriteApplication(environment: $e) { state } }",
        {"e": env},
        token=admin(gw),
    )
    wait_for(lambda: "errors" not in gw.query("{ dualWriteMaps { name } }"))
    wait_for(
        lambda: (
            gw.data(
                "query($e: String!) { addInInstallations(environment: $e) { state } }", {"e": env}
            )["addInInstallations"]
            == [{"state": "INSTALLED"}]
        )
    )
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)
    gw.data(CUSTOMER, {"input": customer("DW-9")}, token=writer)
    update = (
        'mutation { updateCustomerV3(dataAreaId: "USMF", customerAccount: "DW-9", '
        'input: {creditLimit: "4000"}) { creditLimit } }'
    )
    dataverse = gw.run(gw.runtime.services.tenant.dataverse_environment(env)).url

    # another Dataverse client holds the account: the carried update waits, then gives up
    with hold_account(dataverse, "DW-9"):
        slow = gw.error(update, token=writer)
    assert slow["extensions"]["code"] == "UPSTREAM_FAILED"
    assert "did not answer within 1 s" in slow["message"]
    assert gw.data(READ_CUSTOMER, {"a": "DW-9"})["customerV3"]["creditLimit"].startswith("2000")

    # the Dataverse store is gone: the write is refused, F&O unchanged
    gw.run(gw.runtime.linked.source.engine.dispose())
    gw.run(gw.runtime.services.integrations._location.drop(dataverse))
    gone = gw.error(update, token=writer)
    assert gone["extensions"]["code"] == "UPSTREAM_FAILED"
    assert gone["message"].startswith("Dataverse refused the change")
    assert gw.data(READ_CUSTOMER, {"a": "DW-9"})["customerV3"]["creditLimit"].startswith("2000")


@contextmanager
def hold_account(url: str, account: str) -> Iterator[None]:
    """Lock one account row in the Dataverse store from another connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        held = sqlite3.connect(str(parsed.database), isolation_level=None, timeout=30)
        held.execute("BEGIN IMMEDIATE")
        held.execute("UPDATE account SET name = name WHERE accountnumber = ?", (account,))
        try:
            yield
        finally:
            held.execute("ROLLBACK")
            held.close()
        return
    loop = asyncio.new_event_loop()

    async def lock() -> Any:
        conn = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(False))
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1 FROM account WHERE accountnumber = $1 FOR UPDATE", account)
        return conn

    conn = loop.run_until_complete(lock())
    try:
        yield
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


def test_maps_are_saved_checked_and_only_while_stopped(linked: Gateway) -> None:
    gw = linked
    save = (
        "mutation($d: JSON!) { saveDualWriteMap(definition: $d) { name fields { fno default } } }"
    )
    original = next(m for m in OUT_OF_THE_BOX_MAPS if m["name"] == CUSTOMERS)
    broken = copy.deepcopy(original)
    broken["company_specific"] = False
    broken["fields"] = [
        f for f in broken["fields"] if f["fno"] not in ("CustomerAccount", "SalesCurrencyCode")
    ]
    broken["fields"].append({"fno": "CreditLimit", "dataverse": "name", "direction": "both"})
    broken["fields"].append({"fno": "OrganizationName", "dataverse": "versionnumber"})
    error = gw.error(save, {"d": broken}, token=admin(gw))
    assert error["extensions"]["code"] == "MAP_INVALID"
    codes = {p["code"] for p in error["extensions"]["problems"]}
    assert codes == {
        "COMPANY_SCOPE_MISMATCH",
    }  # the scope is checked first: nothing else can be judged across scopes
    broken["company_specific"] = True
    codes = {
        p["code"] for p in gw.error(save, {"d": broken}, token=admin(gw))["extensions"]["problems"]
    }
    assert codes >= {
        "KEY_NOT_MAPPED_BOTH_WAYS",
        "MANDATORY_TARGET_UNMAPPED",
        "TYPE_MISMATCH",
        "READ_ONLY_TARGET_MAPPED",
        "DUPLICATE_TARGET",
    }

    euro = copy.deepcopy(original)
    for field in euro["fields"]:
        if field["fno"] == "SalesCurrencyCode":
            field["default"] = "EUR"
    saved = gw.data(save, {"d": euro}, token=admin(gw))["saveDualWriteMap"]
    assert {"fno": "SalesCurrencyCode", "default": "EUR"} in saved["fields"]
    gw.data(f'mutation {{ runDualWriteMap(name: "{CUSTOMERS}") {{ name }} }}', token=admin(gw))
    running = gw.error(save, {"d": original}, token=admin(gw))
    assert running["extensions"]["code"] == "CONFLICT" and "stop it" in running["message"]
    assert (
        gw.error(f'mutation {{ deleteDualWriteMap(name: "{CUSTOMERS}") }}', token=admin(gw))[
            "extensions"
        ]["code"]
        == "CONFLICT"
    )
    gw.data(f'mutation {{ stopDualWriteMap(name: "{CUSTOMERS}") {{ state }} }}', token=admin(gw))
    assert gw.data(f'mutation {{ deleteDualWriteMap(name: "{CUSTOMERS}") }}', token=admin(gw))
    names = [m["name"] for m in gw.data("{ dualWriteMaps { name } }")["dualWriteMaps"]]
    assert CUSTOMERS not in names and len(names) == 4


def test_a_paused_map_queues_and_resumes_in_order(linked: Gateway) -> None:
    gw = linked
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)
    gw.data(CUSTOMER, {"input": customer("DW-P1")}, token=writer)
    gw.data(CUSTOMER, {"input": customer("DW-P2")}, token=writer)
    paused = gw.data(
        f'mutation {{ pauseDualWriteMap(name: "{CUSTOMERS}") {{ state availableActions }} }}',
        token=admin(gw),
    )["pauseDualWriteMap"]
    assert paused == {"state": "PAUSED", "availableActions": ["RESUME", "STOP"]}

    def update(account: str, limit: str) -> None:
        gw.data(
            'mutation($a: String!, $l: Decimal!) { updateCustomerV3(dataAreaId: "USMF", '
            "customerAccount: $a, input: {creditLimit: $l}) { creditLimit } }",
            {"a": account, "l": limit},
            token=writer,
        )

    update("DW-P1", "3000")
    update("DW-P1", "4000")  # changed twice while paused: the last value wins
    gw.data(CUSTOMER, {"input": customer("DW-P3")}, token=writer)
    gw.data(
        'mutation { deleteCustomerV3(dataAreaId: "USMF", customerAccount: "DW-P2") { version } }',
        token=writer,
    )
    # nothing reached Dataverse, and every change waits
    assert gw.data(ACCOUNT, {"a": "DW-P1"})["accounts"]["nodes"][0]["creditlimit"].startswith(
        "2000"
    )
    assert gw.data(ACCOUNT, {"a": "DW-P3"})["accounts"]["nodes"] == []
    assert len(gw.data(ACCOUNT, {"a": "DW-P2"})["accounts"]["nodes"]) == 1
    waiting = {
        m["name"]: m
        for m in gw.data("{ dualWriteMaps { name queued queueAlert } }")["dualWriteMaps"]
    }
    assert waiting[CUSTOMERS]["queued"] == 4 and waiting[CUSTOMERS]["queueAlert"] is True

    gw.data(f'mutation {{ resumeDualWriteMap(name: "{CUSTOMERS}") {{ state }} }}', token=admin(gw))

    def running() -> bool:
        maps = gw.data("{ dualWriteMaps { name state queued } }")["dualWriteMaps"]
        ours = next(m for m in maps if m["name"] == CUSTOMERS)
        return ours["state"] == "RUNNING" and ours["queued"] == 0

    wait_for(running)
    assert gw.data(ACCOUNT, {"a": "DW-P1"})["accounts"]["nodes"][0]["creditlimit"].startswith(
        "4000"
    )
    assert len(gw.data(ACCOUNT, {"a": "DW-P3"})["accounts"]["nodes"]) == 1
    assert gw.data(ACCOUNT, {"a": "DW-P2"})["accounts"]["nodes"] == []
    update("DW-P1", "4500")  # live again
    assert gw.data(ACCOUNT, {"a": "DW-P1"})["accounts"]["nodes"][0]["creditlimit"].startswith(
        "4500"
    )


SIDES = ["fno", "dv", "fno-direct", "dv-direct"]  # through the gateway, or straight in
WRITE = st.tuples(st.sampled_from(SIDES), st.integers(0, 2), st.integers(1, 9999))
STEPS = st.lists(st.one_of(WRITE, st.just(("pause",)), st.just(("resume",))), max_size=10)


def test_stores_converge_whatever_the_writes_and_pauses(linked: Gateway) -> None:
    """Random writes on both sides, through the gateway or straight into a store, with
    pauses and resumes: afterwards both stores hold the same credit limits, and none
    is lost: the last write, or the master's (Dataverse) when both sides changed a row
    while the map was paused. Rows written straight in are synced while the next
    writes run (a pause waits until they are taken in: what sync had not seen yet
    would be paused too, and then the master's version would win; so does a row
    written straight into the other store too)."""
    gw = linked
    services = gw.runtime.services
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)
    accounts = [f"DW-H{i}" for i in range(3)]
    for account in accounts:
        gw.data(CUSTOMER, {"input": customer(account)}, token=writer)
    ids = [gw.data(ACCOUNT, {"a": a})["accounts"]["nodes"][0]["accountid"] for a in accounts]

    async def entities() -> tuple[Any, Any]:
        return (
            await services.dualwrite.entities(Side.FNO),
            await services.dualwrite.entities(Side.DATAVERSE),
        )

    fno, dv = gw.run(entities())
    expected = {a: Decimal(2000) for a in accounts}

    dataverse = gw.runtime.linked.url
    assert dataverse is not None

    untaken: dict[int, str] = {}  # rows written straight in, not yet synced: the side

    def write(side: str, i: int, value: int) -> None:
        if side.endswith("-direct"):
            if untaken.get(i, side) != side:
                # straight into both stores before sync saw the first: a conflict
                # this test does not model (sync carries the F&O one first)
                taken_in()
            untaken[i] = side
        if side == "fno-direct":
            run_sql(
                gw.fno_url,
                f"UPDATE custcustomerv3entity SET creditlimit = {value} "
                f"WHERE customeraccount = '{accounts[i]}'",
            )
        elif side == "dv-direct":
            run_sql(
                dataverse,
                f"UPDATE account SET creditlimit = {value} WHERE accountnumber = '{accounts[i]}'",
            )
        elif side == "fno":
            key = {"dataAreaId": "usmf", "CustomerAccount": accounts[i]}
            change = Change("CustomerV3", ChangeKind.UPDATE, key, {"CreditLimit": Decimal(value)})
            gw.run(services.writes.apply(Side.FNO, fno["CustomerV3"], fno, change))
        else:
            key = {"accountid": ids[i]}
            change = Change("account", ChangeKind.UPDATE, key, {"creditlimit": Decimal(value)})
            gw.run(services.writes.apply(Side.DATAVERSE, dv["account"], dv, change))

    def limits(account: str) -> dict[str, Decimal]:
        in_fno = gw.data(READ_CUSTOMER, {"a": account})["customerV3"]["creditLimit"]
        in_dv = gw.data(ACCOUNT, {"a": account})["accounts"]["nodes"][0]["creditlimit"]
        return {"fno": Decimal(in_fno), "dv": Decimal(in_dv)}

    def taken_in() -> None:
        """Every row written straight into a store has been synced (or queued)."""
        for url in (gw.fno_url, dataverse):
            wait_for(lambda u=url: sql_value(u, "SELECT count(*) FROM fno_change_log") == 0)
        untaken.clear()

    def settle(window: dict[str, dict[str, int]]) -> None:
        taken_in()
        gw.run(services.dualwrite.resume(CUSTOMERS))
        wait_for(
            lambda: (
                (view := gw.run(services.dualwrite.map(CUSTOMERS))).state is MapState.RUNNING
                and view.queued == 0
            )
        )
        for account, sides in window.items():
            expected[account] = Decimal(sides["dv"] if "dv" in sides else sides["fno"])

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(steps=STEPS)
    def run(steps: list[tuple[Any, ...]]) -> None:
        window: dict[str, dict[str, int]] | None = None  # writes while paused
        for step in steps:
            if step[0] == "pause" and window is None:
                taken_in()
                gw.run(services.dualwrite.pause(CUSTOMERS))
                window = {}
            elif step[0] == "resume" and window is not None:
                settle(window)
                window = None
            elif step[0] in SIDES:
                side, i, value = step
                write(side, i, value)
                if window is None:
                    expected[accounts[i]] = Decimal(value)
                else:
                    window.setdefault(accounts[i], {})[side.split("-")[0]] = value
        if window is not None:
            settle(window)
        taken_in()
        for account in accounts:
            found = limits(account)
            assert found["fno"] == found["dv"] == expected[account], (account, steps)

    run()


def test_map_changes_are_streamed(linked: Gateway) -> None:
    gw = linked
    subscription = GraphQLRequest(
        "subscription { dualWriteMaps { name state initialSync { company done } } }"
    )

    async def listen() -> list[str]:
        states: list[str] = []
        transport = WebsocketsTransport(
            url=gw.url.replace("http://", "ws://") + "/graphql",
            init_payload={"Authorization": f"Bearer {gw.reader}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        async with Client(transport=transport) as session:
            async for result in session.subscribe(subscription):
                ours = next(m for m in result["dualWriteMaps"] if m["name"] == CUSTOMERS)
                if not states or states[-1] != ours["state"]:
                    states.append(ours["state"])
                if ours["state"] == "RUNNING":
                    return states
        return states

    async def scenario() -> list[str]:
        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(
            gw.data,
            f'mutation {{ runDualWriteMap(name: "{CUSTOMERS}", initialSync: true, master: FNO) '
            "{ name } }",
            None,
            admin(gw),
        )
        return await asyncio.wait_for(listener, 60)

    assert asyncio.run(scenario()) == ["NOT_RUNNING", "INITIALIZING", "RUNNING"]


def test_alert_rules_act_when_errors_pile_up(linked: Gateway) -> None:
    gw = linked
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)
    rule = gw.data(
        f'mutation {{ setDualWriteAlert(name: "{CUSTOMERS}", action: PAUSE, errors: 2, '
        "withinMinutes: 60) { alerts { action errors withinMinutes firedAt } } }",
        token=admin(gw),
    )["setDualWriteAlert"]["alerts"]
    assert rule == [{"action": "PAUSE", "errors": 2, "withinMinutes": 60, "firedAt": None}]
    long_email = "z" * 120 + "@contoso.com"
    for account in ("DW-A1", "DW-A2"):
        refused = gw.error(
            CUSTOMER, {"input": customer(account, primaryContactEmail=long_email)}, token=writer
        )
        assert refused["message"].startswith("Dataverse refused the change")
    maps = gw.data("{ dualWriteMaps { name state activity { kind message } } }")["dualWriteMaps"]
    ours = next(m for m in maps if m["name"] == CUSTOMERS)
    assert ours["state"] == "PAUSED"
    alert = [a["message"] for a in ours["activity"] if a["kind"] == "ALERT"]
    assert alert == ["2 errors within 60 min (alert at 2): pause"]
