"""The business event catalog and contract: which committed change raises which event,
and every payload valid against its event's published JSON Schema."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import jsonschema
import pytest

from datasources.fno_demo.entities import DEMO_ENTITIES
from gateway.kernel.change import ChangeKind
from gateway.kernel.events import BY_ID, CATALOG, data_events, envelope, raised
from gateway.kernel.json import plain

ENTITIES = {e.name: e for e in DEMO_ENTITIES}
WANTED = [
    "CustomerCreated",
    "CustomerCreditLimitChanged",
    "CustomerAddressChanged",
    "CustomerPlacedOnHold",
    "SalesOrderCreated",
    "SalesOrderConfirmed",
    "VendorCreated",
    "IntegrationSetupStageChanged",
    "AddInInstalled",
    "DualWriteMapStateChanged",
    "DualWriteRecordFailed",
]
CUSTOMER = {
    "dataAreaId": "usmf",
    "CustomerAccount": "C-1",
    "OrganizationName": "Ray Ltd",
    "PartyType": "Organization",
    "CustomerGroupId": "10",
    "CreditLimit": Decimal("2000.00"),
    "OnHoldStatus": "No",
    "DeliveryAddressStreet": "1 Harbour Road",
    "DeliveryAddressCity": "Seattle",
    "InvoiceAddressStreet": None,
    "InvoiceAddressCity": None,
}


def delivered(found: Any, number: int = 7) -> dict[str, Any]:
    """A payload as delivered, checked against its event's schema."""
    payload: dict[str, Any] = plain(
        envelope(
            found.event,
            found.legal_entity,
            number,
            str(uuid.uuid4()),
            dt.datetime.now(dt.UTC),
            "rep@contoso.com",
            found.fields,
        )
    )
    jsonschema.validate(payload, found.event.schema())
    return payload


def test_the_catalog_has_every_event_with_category_version_and_schema() -> None:
    assert [f"{w}BusinessEvent" for w in WANTED] == [e.id for e in CATALOG]
    for event in CATALOG:
        assert event.category and event.description and (event.major, event.minor) == (1, 0)
        jsonschema.Draft202012Validator.check_schema(event.schema())


def test_a_customer_change_raises_the_events_its_fields_say() -> None:
    customer = ENTITIES["CustomerV3"]
    [created] = raised(customer, ChangeKind.CREATE, None, CUSTOMER)
    payload = delivered(created)
    assert payload["BusinessEventId"] == "CustomerCreatedBusinessEvent"
    assert payload["BusinessEventLegalEntity"] == "USMF"
    assert payload["ControlNumber"] == 7 and payload["EventTime"].endswith("Z")
    assert payload["CustomerAccount"] == "C-1"

    after = {**CUSTOMER, "CreditLimit": Decimal("5000.00"), "InvoiceAddressCity": "Redmond"}
    found = {r.event.id: r for r in raised(customer, ChangeKind.UPDATE, CUSTOMER, after)}
    assert set(found) == {
        "CustomerCreditLimitChangedBusinessEvent",
        "CustomerAddressChangedBusinessEvent",
    }
    limit = delivered(found["CustomerCreditLimitChangedBusinessEvent"])
    assert (limit["PreviousCreditLimit"], limit["CreditLimit"]) == ("2000.00", "5000.00")

    on_hold = {**CUSTOMER, "OnHoldStatus": "All"}
    [held] = raised(customer, ChangeKind.UPDATE, CUSTOMER, on_hold)
    assert delivered(held)["OnHoldStatus"] == "All"
    assert raised(customer, ChangeKind.UPDATE, on_hold, CUSTOMER) == []  # released
    assert raised(customer, ChangeKind.DELETE, CUSTOMER, None) == []


@pytest.mark.parametrize(
    ("before", "after", "wanted"),
    [
        (None, "Backorder", ["SalesOrderCreatedBusinessEvent"]),
        ("Backorder", "Delivered", ["SalesOrderConfirmedBusinessEvent"]),
        ("Delivered", "Invoiced", []),
        ("Backorder", "Canceled", []),
    ],
)
def test_sales_orders_raise_created_and_confirmed(
    before: str | None, after: str, wanted: list[str]
) -> None:
    order = {"dataAreaId": "usmf", "SalesOrderNumber": "SO-1", "CurrencyCode": "USD"}
    kind = ChangeKind.CREATE if before is None else ChangeKind.UPDATE
    old = None if before is None else {**order, "SalesOrderStatus": before}
    found = raised(ENTITIES["SalesOrderHeaderV2"], kind, old, {**order, "SalesOrderStatus": after})
    assert [r.event.id for r in found] == wanted
    for r in found:
        delivered(r)


def test_every_visible_entity_has_created_updated_and_deleted_data_events() -> None:
    for entity in DEMO_ENTITIES:
        events = data_events(entity)
        assert [e.id for e in events] == [
            f"{entity.name}{verb}DataEvent" for verb in ("Created", "Updated", "Deleted")
        ]
        assert all(e.entity == entity.name for e in events)
        names = [[name for name, _ in e.fields] for e in events]
        assert "Before" not in names[0] and "Before" in names[1] and "Before" in names[2]
        for event in events:
            jsonschema.Draft202012Validator.check_schema(event.schema())
    assert BY_ID["VendorCreatedBusinessEvent"].category == "Accounts payable"
