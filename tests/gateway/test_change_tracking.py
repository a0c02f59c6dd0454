"""Rows written straight into a store, by a client other than the gateway, sync
through the running maps (and queue for a paused one), on SQLite and PostgreSQL.
What sync applies is never logged as a change, so nothing echoes back."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from gateway.auth import Role
from tests.conftest import Gateway, run_sql
from tests.gateway.test_dualwrite import (
    ACCOUNT,
    CUSTOMER,
    CUSTOMERS,
    READ_CUSTOMER,
    customer,
    linked,
    run_customers,
    wait_for,
)
from tests.gateway.test_setup import admin

__all__ = ["linked"]  # the fixture, shared with the dual-write tests

EVENTS = """query($events: [String!]) { businessEvents(events: $events, first: 1000) }"""
INSERT_CUSTOMER = """
INSERT INTO custcustomerv3entity (dataareaid, customeraccount, organizationname, partytype,
  customergroupid, creditlimit, creditlimitismandatory, salescurrencycode, onholdstatus)
VALUES ('usmf', :account, 'Direct Ltd', 2, '10', 1500, 0, 'USD', 0)
"""
INSERT_ACCOUNT = """
INSERT INTO account (accountid, accountnumber, name, msdyn_company, msdyn_customergroupid,
  creditlimit, statecode, versionnumber)
VALUES (:id, :account, 'Straight into Dataverse', 'USMF', :group, 700, 0, 1)
"""


def accounts(gw: Gateway, number: str) -> list[dict[str, object]]:
    nodes: list[dict[str, object]] = gw.data(ACCOUNT, {"a": number})["accounts"]["nodes"]
    return nodes


def credit_limit(gw: Gateway, number: str) -> str | None:
    found = gw.data(READ_CUSTOMER, {"a": number})["customerV3"]
    return found["creditLimit"] if found else None


def activity(gw: Gateway, kind: str) -> list[str]:
    maps = gw.data("{ dualWriteMaps { name activity { kind message } } }")["dualWriteMaps"]
    lines = next(m for m in maps if m["name"] == CUSTOMERS)["activity"]
    return [line["message"] for line in lines if line["kind"] == kind]


def test_direct_writes_sync_both_ways_and_never_echo(linked: Gateway) -> None:
    gw = linked
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)
    fno, dataverse = gw.fno_url, gw.runtime.linked.url
    assert dataverse is not None

    # another F&O client inserts a customer: it becomes an account
    run_sql(fno, INSERT_CUSTOMER, params={"account": "DW-T1"})
    created = wait_for(lambda: accounts(gw, "DW-T1"))[0]
    assert created["name"] == "Direct Ltd" and created["creditlimit"].startswith("1500")

    # another Dataverse client raises the credit limit: F&O has it, and raises the
    # event a write of it in F&O would
    run_sql(dataverse, "UPDATE account SET creditlimit = 5000 WHERE accountnumber = 'DW-T1'")
    wait_for(lambda: (credit_limit(gw, "DW-T1") or "").startswith("5000"))
    [raised] = wait_for(
        lambda: gw.data(EVENTS, {"events": ["CustomerCreditLimitChangedBusinessEvent"]})[
            "businessEvents"
        ]
    )
    assert (raised["CustomerAccount"], raised["PreviousCreditLimit"], raised["CreditLimit"]) == (
        "DW-T1",
        "1500.00",
        "5000.00",
    )

    # each side's change was synced once: what sync wrote was not seen as a change
    time.sleep(1.0)
    tracked = activity(gw, "TRACKED")
    assert sorted(tracked) == [
        "1 rows written directly to Dataverse synced, 0 refused",
        "1 rows written directly to F&O synced, 0 refused",
    ]

    # writes through the gateway are carried by the write itself, not tracked again
    gw.data(CUSTOMER, {"input": customer("DW-T2")}, token=writer)
    time.sleep(1.0)
    assert len(activity(gw, "TRACKED")) == 2

    # deletes sync too
    run_sql(fno, "DELETE FROM custcustomerv3entity WHERE customeraccount = 'DW-T1'")
    wait_for(lambda: not accounts(gw, "DW-T1"))
    run_sql(dataverse, "DELETE FROM account WHERE accountnumber = 'DW-T2'")
    wait_for(lambda: credit_limit(gw, "DW-T2") is None)


def test_direct_writes_queue_while_paused_and_refusals_are_logged(linked: Gateway) -> None:
    gw = linked
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)
    fno, dataverse = gw.fno_url, gw.runtime.linked.url
    assert dataverse is not None
    gw.data(CUSTOMER, {"input": customer("DW-Q1")}, token=writer)
    gw.data(CUSTOMER, {"input": customer("DW-Q2")}, token=writer)
    gw.data(f'mutation {{ pauseDualWriteMap(name: "{CUSTOMERS}") {{ state }} }}', token=admin(gw))

    run_sql(
        fno, "UPDATE custcustomerv3entity SET creditlimit = 3100 WHERE customeraccount = 'DW-Q1'"
    )
    run_sql(dataverse, "DELETE FROM account WHERE accountnumber = 'DW-Q2'")

    def queued() -> int:
        maps = gw.data("{ dualWriteMaps { name queued } }")["dualWriteMaps"]
        count: int = next(m for m in maps if m["name"] == CUSTOMERS)["queued"]
        return count

    wait_for(lambda: queued() == 2)
    assert accounts(gw, "DW-Q1")[0]["creditlimit"].startswith("2000")  # not carried yet
    assert credit_limit(gw, "DW-Q2") is not None

    gw.data(f'mutation {{ resumeDualWriteMap(name: "{CUSTOMERS}") {{ state }} }}', token=admin(gw))
    wait_for(lambda: accounts(gw, "DW-Q1")[0]["creditlimit"].startswith("3100"))
    wait_for(lambda: credit_limit(gw, "DW-Q2") is None)  # found by its account number
    [gone] = wait_for(  # raised by the catch-up's delete, relayed to the log
        lambda: gw.data(EVENTS, {"events": ["CustomerV3DeletedDataEvent"]})["businessEvents"]
    )
    assert gone["Before"]["CustomerAccount"] == "DW-Q2"

    # a row F&O refuses (its customer group does not exist there) lands in the error log
    run_sql(
        dataverse,
        INSERT_ACCOUNT,
        params={"id": str(uuid.uuid4()), "account": "DW-Q3", "group": "NOPE"},
    )

    run_sql(
        dataverse,
        INSERT_ACCOUNT,
        params={"id": str(uuid.uuid4()), "account": "DW-Q4", "group": "NOPE2"},
    )

    def errors() -> dict[str, dict[str, str]]:
        maps = gw.data("{ dualWriteMaps { name errors { id key message } } }")["dualWriteMaps"]
        found = next(m for m in maps if m["name"] == CUSTOMERS)["errors"]
        return {e["key"]["accountid"]: e for e in found} if len(found) == 2 else {}

    logged = wait_for(errors)
    by_account = {
        a["accountnumber"]: a["accountid"]
        for number in ("DW-Q3", "DW-Q4")
        for a in gw.data(
            "query($a: String!) { accounts(where: {accountnumber: {eq: $a}}) "
            "{ nodes { accountid accountnumber } } }",
            {"a": number},
        )["accounts"]["nodes"]
    }
    refused = logged[by_account["DW-Q3"]]
    assert "CustomerGroup" in refused["message"] and "NOPE" in refused["message"]
    # each refusal raised DualWriteRecordFailed; each change of state, StateChanged
    raised = gw.data('{ businessEvents(categories: ["Dual-write"]) }', token=admin(gw))[
        "businessEvents"
    ]
    failed = [e for e in raised if e["BusinessEventId"] == "DualWriteRecordFailedBusinessEvent"]
    assert {e["Key"]["accountid"] for e in failed} >= set(by_account.values())
    assert failed[0]["Map"] == CUSTOMERS and "NOPE" in failed[0]["Message"]
    states = [
        e["State"]
        for e in raised
        if e["BusinessEventId"] == "DualWriteMapStateChangedBusinessEvent" and e["Map"] == CUSTOMERS
    ]
    assert states == ["RUNNING", "PAUSED", "RESUMING", "RUNNING"]
    assert credit_limit(gw, "DW-Q3") is None

    # the group is made in F&O (and carried to Dataverse); one error is retried alone
    gw.data(
        'mutation { createCustomerGroup(input: {dataAreaId: "USMF", customerGroupId: "NOPE", '
        "isSalesTaxIncludedInPrice: No}) { customerGroupId } }",
        token=writer,
    )
    retried = gw.data(
        "mutation($n: String!, $ids: [ID!]) { retryDualWriteErrors(name: $n, ids: $ids) "
        "{ errors { key } } }",
        {"n": CUSTOMERS, "ids": [refused["id"]]},
        token=admin(gw),
    )["retryDualWriteErrors"]["errors"]
    assert [e["key"]["accountid"] for e in retried] == [by_account["DW-Q4"]]
    assert credit_limit(gw, "DW-Q3") == "700.00"


@contextmanager
def in_flight(url: str, statement: str) -> Iterator[None]:
    """A gateway write that has not committed yet: another transaction, marked as the
    gateway's, runs `statement` and holds what it wrote until the block ends."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        held = sqlite3.connect(str(parsed.database), isolation_level=None, timeout=30)
        held.execute("BEGIN IMMEDIATE")
        held.execute("INSERT INTO fno_gateway_writer (mark) VALUES (1)")
        held.execute(statement)
        try:
            yield
        finally:
            held.execute("DELETE FROM fno_gateway_writer")
            held.execute("COMMIT")
            held.close()
        return
    loop = asyncio.new_event_loop()

    async def write() -> Any:
        conn = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(False))
        await conn.execute("BEGIN")
        await conn.execute("SET LOCAL fno_gateway.writer = 'on'")
        await conn.execute(statement)
        return conn

    conn = loop.run_until_complete(write())
    try:
        yield
    finally:
        loop.run_until_complete(conn.execute("COMMIT"))
        loop.run_until_complete(conn.close())
        loop.close()


def gateway_write(gw: Gateway, url: str, statement: str) -> None:
    """A committed write marked as the gateway's, which the triggers leave alone."""
    with in_flight(url, statement):
        pass


def set_credit(table: str, limit: int, number: str) -> str:
    column = "customeraccount" if table == "custcustomerv3entity" else "accountnumber"
    return f"UPDATE {table} SET creditlimit = {limit} WHERE {column} = '{number}'"


def test_a_direct_write_never_undoes_a_gateway_write_that_raced_it(linked: Gateway) -> None:
    """Sync reads a row written straight into F&O, then waits for the Dataverse row a
    gateway write holds; that write commits the newer value on both sides first. What
    sync read is stale by then: it is read again, not written over the newer value."""
    gw = linked
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)
    gw.data(CUSTOMER, {"input": customer("DW-R1")}, token=writer)
    dataverse = gw.runtime.linked.url
    assert dataverse is not None
    with in_flight(dataverse, set_credit("account", 7000, "DW-R1")):
        run_sql(gw.fno_url, set_credit("custcustomerv3entity", 3000, "DW-R1"))
        time.sleep(1.0)  # sync has read 3000 and waits for the account row
        gateway_write(gw, gw.fno_url, set_credit("custcustomerv3entity", 7000, "DW-R1"))
    time.sleep(1.5)
    assert (credit_limit(gw, "DW-R1") or "").startswith("7000")
    assert accounts(gw, "DW-R1")[0]["creditlimit"].startswith("7000")


def test_a_direct_write_waits_for_a_gateway_write_in_flight_on_its_side(
    linked: Gateway,
) -> None:
    """A gateway write to F&O commits Dataverse first and F&O last. A row written
    straight into F&O just before it is not carried while that write holds the F&O
    row: what sync would read there is the value the write is replacing, and copying
    it over the newer Dataverse value would leave the two sides apart for good."""
    gw = linked
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)
    gw.data(CUSTOMER, {"input": customer("DW-R2")}, token=writer)
    dataverse = gw.runtime.linked.url
    assert dataverse is not None
    tracker = gw.runtime.tracker
    asyncio.run_coroutine_threadsafe(tracker.stop(), gw.loop).result()
    run_sql(gw.fno_url, set_credit("custcustomerv3entity", 3000, "DW-R2"))
    with in_flight(gw.fno_url, set_credit("custcustomerv3entity", 7000, "DW-R2")):
        gateway_write(gw, dataverse, set_credit("account", 7000, "DW-R2"))
        gw.loop.call_soon_threadsafe(tracker.start)
        time.sleep(1.0)  # sync has read 3000 from F&O a few times by now
        assert accounts(gw, "DW-R2")[0]["creditlimit"].startswith("7000")
        assert not tracker._failures  # waiting for a held row is no failure
    wait_for(lambda: "1 rows written directly to F&O synced, 0 refused" in activity(gw, "TRACKED"))
    assert (credit_limit(gw, "DW-R2") or "").startswith("7000")
    assert accounts(gw, "DW-R2")[0]["creditlimit"].startswith("7000")


def test_direct_writes_raise_their_events_once(linked: Gateway) -> None:
    """Rows written straight into F&O raise the events a gateway write would, once,
    with the row as it was; nobody is named as the initiating user."""
    gw = linked
    run_customers(gw, gw.token(Role.WRITER, sub="rep@contoso.com"))

    def raised(*names: str) -> list[dict[str, Any]]:
        found = gw.data(EVENTS, {"events": list(names)})["businessEvents"]
        return [
            e
            for e in found
            if (e.get("CustomerAccount") or e.get("Before", {}).get("CustomerAccount")) == "DW-E1"
        ]

    run_sql(gw.fno_url, INSERT_CUSTOMER, params={"account": "DW-E1"})
    [created] = wait_for(lambda: raised("CustomerCreatedBusinessEvent"))
    assert (created["OrganizationName"], created["InitiatingUser"]) == ("Direct Ltd", "")
    run_sql(
        gw.fno_url,
        "UPDATE custcustomerv3entity SET creditlimit = 3000 WHERE customeraccount = 'DW-E1'",
    )
    [changed] = wait_for(lambda: raised("CustomerCreditLimitChangedBusinessEvent"))
    assert (changed["PreviousCreditLimit"], changed["CreditLimit"]) == ("1500.00", "3000.00")
    run_sql(gw.fno_url, "DELETE FROM custcustomerv3entity WHERE customeraccount = 'DW-E1'")
    [deleted] = wait_for(lambda: raised("CustomerV3DeletedDataEvent"))
    assert deleted["Before"]["CreditLimit"] == "3000.00"
    time.sleep(1.0)  # rounds after: nothing raised twice
    data = raised("CustomerV3CreatedDataEvent", "CustomerV3UpdatedDataEvent")
    assert [e["BusinessEventId"] for e in data] == [
        "CustomerV3CreatedDataEvent",
        "CustomerV3UpdatedDataEvent",
    ]
    assert len(raised("CustomerCreatedBusinessEvent", "CustomerV3DeletedDataEvent")) == 2
