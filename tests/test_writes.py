"""Writes through virtual entities, on SQLite and PostgreSQL: validated from the entity
metadata, all or nothing, with row versions, answering the row as the store holds it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.auth import Role
from tests.conftest import ANONYMOUS, Gateway, run_sql

CREATE = """
mutation($input: CustomerV3CreateInput!) {
  createCustomerV3(input: $input) {
    dataAreaId customerAccount organizationName creditLimit partyType recVersion
    customerGroup { customerGroupId description }
  }
}
"""
UPDATE = """
mutation($account: String!, $version: Int, $input: CustomerV3UpdateInput!) {
  updateCustomerV3(dataAreaId: "USMF", customerAccount: $account,
                   expectedVersion: $version, input: $input) {
    customerAccount creditLimit deliveryAddressCity recVersion
  }
}
"""
DELETE = """
mutation($account: String!, $version: Int) {
  deleteCustomerV3(dataAreaId: "USMF", customerAccount: $account, expectedVersion: $version) {
    entity key version
  }
}
"""
READ = """
query($account: String!) {
  customerV3(dataAreaId: "USMF", customerAccount: $account) {
    customerAccount creditLimit deliveryAddressCity recVersion
  }
}
"""


def new_customer(**fields: Any) -> dict[str, Any]:
    return {
        "dataAreaId": "USMF",
        "customerAccount": "W-0001",
        "organizationName": "Northwind Traders",
        "partyType": "Organization",
        "customerGroupId": "10",
        "salesCurrencyCode": "USD",
        "creditLimitIsMandatory": "No",
        "onHoldStatus": "No",
        "creditLimit": "2000",
        **fields,
    }


@pytest.fixture
def gw(fresh_gateway: Callable[..., Gateway]) -> Gateway:
    return fresh_gateway()


def writer(gw: Gateway) -> str:
    return gw.token(Role.WRITER, sub="rep@contoso.com")


def test_create_update_delete_round_trip(gw: Gateway) -> None:
    token = writer(gw)
    created = gw.data(CREATE, {"input": new_customer()}, token=token)["createCustomerV3"]
    assert created["customerAccount"] == "W-0001" and created["dataAreaId"] == "usmf"
    assert created["creditLimit"] == "2000.00" or created["creditLimit"] == "2000"
    assert created["recVersion"] == 1 and created["partyType"] == "Organization"
    assert created["customerGroup"]["customerGroupId"] == "10"  # nested, read after commit

    variables = {"account": "W-0001", "version": 1, "input": {"creditLimit": "5000"}}
    updated = gw.data(UPDATE, variables, token=token)["updateCustomerV3"]
    assert updated["recVersion"] == 2 and updated["creditLimit"].startswith("5000")
    assert gw.data(READ, {"account": "W-0001"})["customerV3"] == updated

    stale = gw.error(UPDATE, {**variables, "input": {"deliveryAddressCity": "Oslo"}}, token=token)
    assert stale["extensions"]["code"] == "CONFLICT" and "read it again" in stale["message"]
    assert stale["extensions"]["currentVersion"] == 2
    assert gw.data(READ, {"account": "W-0001"})["customerV3"]["deliveryAddressCity"] is None

    removed = gw.data(DELETE, {"account": "W-0001", "version": 2}, token=token)
    assert removed["deleteCustomerV3"]["version"] == 2
    assert gw.data(READ, {"account": "W-0001"})["customerV3"] is None
    gone = gw.error(DELETE, {"account": "W-0001"}, token=token)
    assert gone["extensions"]["code"] == "NOT_FOUND"


def test_bad_input_is_refused_whole_with_every_problem(gw: Gateway) -> None:
    token = writer(gw)
    bad = new_customer(
        organizationName="x" * 101,
        customerGroupId="NOPE",
        creditLimit="12.345",
        salesCurrencyCode=None,
    )
    error = gw.error(CREATE, {"input": bad}, token=token)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    problems = error["extensions"]["problems"]
    assert any("longer than 100" in p for p in problems)
    assert any("more than 2 decimals" in p for p in problems)
    assert any("SalesCurrencyCode" in p and "empty" in p for p in problems)
    missing = dict(new_customer())
    del missing["customerGroupId"]
    required = gw.error(CREATE, {"input": missing}, token=token)
    assert "CustomerGroupId (Customer group) is required" in required["message"]
    no_group = gw.error(CREATE, {"input": new_customer(customerGroupId="NOPE")}, token=token)
    assert no_group["extensions"]["code"] == "BAD_USER_INPUT"
    assert "there is no CustomerGroup with CustomerGroupId 'NOPE'" in no_group["message"]
    assert gw.data(READ, {"account": "W-0001"})["customerV3"] is None  # nothing landed
    gw.data(CREATE, {"input": new_customer()}, token=token)
    twice = gw.error(CREATE, {"input": new_customer()}, token=token)
    assert twice["extensions"]["code"] == "CONFLICT" and "exists already" in twice["message"]
    enum = gw.query(CREATE, {"input": new_customer(partyType="Robot")}, token=token)
    assert enum["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"  # caught by GraphQL


def test_writes_need_the_writer_role_and_the_legal_entity(gw: Gateway) -> None:
    variables = {"input": new_customer()}
    assert gw.error(CREATE, variables, token=ANONYMOUS)["extensions"]["code"] == "UNAUTHENTICATED"
    assert gw.error(CREATE, variables)["extensions"]["code"] == "FORBIDDEN"  # a reader
    usrt_only = gw.token(Role.WRITER, sub="rep@contoso.com", companies=["USRT"])
    refused = gw.error(CREATE, variables, token=usrt_only)
    assert refused["extensions"]["code"] == "FORBIDDEN" and "USMF" in refused["message"]
    assert gw.data(READ, {"account": "W-0001"})["customerV3"] is None


def test_a_row_changed_directly_in_the_store_is_not_overwritten(gw: Gateway) -> None:
    token = writer(gw)
    gw.data(CREATE, {"input": new_customer()}, token=token)
    # another F&O client updates the row (and its version, as F&O does)
    run_sql(
        gw.fno_url,
        "UPDATE custcustomerv3entity SET creditlimit = 7000, recversion = recversion + 1 "
        "WHERE dataareaid = 'usmf' AND customeraccount = 'W-0001'",
    )
    variables = {"account": "W-0001", "version": 1, "input": {"creditLimit": "3000"}}
    assert gw.error(UPDATE, variables, token=token)["extensions"]["code"] == "CONFLICT"
    assert gw.data(READ, {"account": "W-0001"})["customerV3"]["creditLimit"].startswith("7000")
