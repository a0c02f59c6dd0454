"""Business events through the outbox: a committed write raises its events in the
same transaction, a refused one raises none; the log numbers them and a listener
reads them after its cursor, in ControlNumber order, only for its legal entities."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gateway.auth import Role
from tests.conftest import Gateway
from tests.gateway.test_dualwrite import (
    ACCOUNT,
    UPDATE_ACCOUNT,
    customer,
    linked,
    run_customers,
    wait_for,
)
from tests.test_writes import CREATE, UPDATE

__all__ = ["linked"]  # the fixture, shared with the dual-write tests

EVENTS = """query($after: Int, $events: [String!], $le: [String!]) {
  businessEvents(after: $after, events: $events, legalEntities: $le, first: 10000) }"""


def events(gw: Gateway, after: int = 0, token: str | None = None, **filters: Any) -> Any:
    variables = {"after": after, "events": filters.get("events"), "le": filters.get("le")}
    return gw.data(EVENTS, variables, token=token)["businessEvents"]


def test_committed_writes_raise_events_refused_ones_none(
    fresh_gateway: Callable[..., Gateway],
) -> None:
    gw = fresh_gateway()
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    gw.data(CREATE, {"input": customer("EV-1")}, token=writer)
    created = wait_for(lambda: events(gw, events=["CustomerCreatedBusinessEvent"]))
    [payload] = created
    assert list(payload)[:8] == [
        "BusinessEventId",
        "BusinessEventLegalEntity",
        "ControlNumber",
        "EventId",
        "EventTime",
        "MajorVersion",
        "MinorVersion",
        "InitiatingUser",
    ]
    assert payload["BusinessEventLegalEntity"] == "USMF"
    assert payload["InitiatingUser"] == "rep@contoso.com"
    assert payload["CustomerAccount"] == "EV-1" and payload["PartyType"] == "Organization"
    both = wait_for(lambda: len(found := events(gw)) == 2 and found)
    assert both[1]["BusinessEventId"] == "CustomerV3CreatedDataEvent"
    assert both[1]["ControlNumber"] > payload["ControlNumber"]
    cursor = both[1]["ControlNumber"]

    # a stale version is refused: nothing changed, nothing raised
    stale = gw.error(
        UPDATE, {"account": "EV-1", "version": 7, "input": {"creditLimit": "9"}}, token=writer
    )
    assert stale["extensions"]["code"] == "CONFLICT"
    gw.data(UPDATE, {"account": "EV-1", "input": {"creditLimit": "5000"}}, token=writer)
    later = wait_for(
        lambda: [
            e for e in events(gw, cursor) if e["BusinessEventId"] == "CustomerV3UpdatedDataEvent"
        ]
    )
    time.sleep(0.5)  # anything the refused write had raised would be relayed by now
    after = events(gw, cursor)
    assert [e["BusinessEventId"] for e in after] == [
        "CustomerCreditLimitChangedBusinessEvent",
        "CustomerV3UpdatedDataEvent",
    ]
    numbers = [e["ControlNumber"] for e in after]
    assert numbers == sorted(numbers) and numbers[0] > cursor
    limit = after[0]
    assert (limit["PreviousCreditLimit"], limit["CreditLimit"]) == ("2000.00", "5000.00")
    assert later[0]["Before"]["CreditLimit"] == "2000.00"
    assert events(gw, numbers[-1]) == []  # nothing after the last one

    # a reader of one legal entity sees only its events
    demf = gw.token(Role.READER, companies=["DEMF"])
    assert events(gw, token=demf) == []
    assert len(events(gw, token=gw.token(Role.READER, companies=["USMF"]))) == 4


def test_carried_writes_and_the_integration_raise_their_events(linked: Gateway) -> None:
    """A write through the gateway to Dataverse that dual-write carries to F&O raises
    F&O's events, in F&O's transaction, as the writer's; setting up the integration
    and installing the dual-write application raise their lifecycle events."""
    gw = linked
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    run_customers(gw, writer)
    gw.data(CREATE, {"input": customer("EV-C1")}, token=writer)
    account_id = gw.data(ACCOUNT, {"a": "EV-C1"})["accounts"]["nodes"][0]["accountid"]
    cursor = max(e["ControlNumber"] for e in events(gw))
    gw.data(UPDATE_ACCOUNT, {"id": account_id, "input": {"creditlimit": "9000"}}, token=writer)
    changed = wait_for(
        lambda: events(gw, cursor, events=["CustomerCreditLimitChangedBusinessEvent"])
    )
    assert [(e["CustomerAccount"], e["CreditLimit"], e["InitiatingUser"]) for e in changed] == [
        ("EV-C1", "9000.00", "rep@contoso.com")
    ]
    updated = events(gw, cursor, events=["CustomerV3UpdatedDataEvent"])
    assert updated[0]["Before"]["CreditLimit"] == "2000.00"

    stages = events(gw, events=["IntegrationSetupStageChangedBusinessEvent"])
    assert [(e["Stage"], e["State"]) for e in stages] == [
        ("VALIDATE", "IN_PROGRESS"),
        ("CREATE_DATAVERSE_ENVIRONMENT", "IN_PROGRESS"),
        ("INSTALL_PLATFORM_COMPONENTS", "IN_PROGRESS"),
        ("LINK_ENVIRONMENTS", "IN_PROGRESS"),
        ("COMPLETED", "COMPLETED"),
    ]
    assert {e["BusinessEventLegalEntity"] for e in stages} == {""}
    [installed] = events(gw, events=["AddInInstalledBusinessEvent"])
    assert installed["Environment"] == stages[0]["Environment"]
