"""Business events: the catalog, the payload contract, and which committed change
raises which event.

Pure: the event service writes what `raised` returns into the outbox, in the same
transaction as the change; delivery reads it from there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.kernel.catalog import EntityMetadata, FieldType
from gateway.kernel.change import ChangeKind

JSON_TYPES = {
    FieldType.STRING: "string",
    FieldType.INT: "integer",
    FieldType.INT64: "integer",
    FieldType.ENUM: "string",  # enums travel by symbol
    FieldType.REAL: "decimal",
    FieldType.DATE: "string",
    FieldType.UTC_DATETIME: "string",
}
ENVELOPE: dict[str, dict[str, Any]] = {
    "BusinessEventId": {"type": "string"},
    "BusinessEventLegalEntity": {"type": "string"},
    "ControlNumber": {"type": "integer", "description": "Increases; gaps are allowed."},
    "EventId": {"type": "string", "format": "uuid"},
    "EventTime": {"type": "string", "format": "date-time"},
    "MajorVersion": {"type": "integer"},
    "MinorVersion": {"type": "integer"},
    "InitiatingUser": {"type": "string"},
}


@dataclass(frozen=True)
class BusinessEvent:
    """One event of the catalog, named as F&O names them (`<Noun><Verb>BusinessEvent`)."""

    id: str
    name: str
    category: str
    description: str
    fields: tuple[tuple[str, str], ...]  # (payload field, JSON type)
    major: int = 1
    minor: int = 0
    entity: str | None = None  # a data event's entity

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the payload: the envelope, then the event's own fields."""
        own = {name: _property(kind) for name, kind in self.fields}
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.id,
            "description": self.description,
            "type": "object",
            "properties": {**ENVELOPE, **own},
            "required": list(ENVELOPE),
        }


def _property(kind: str) -> dict[str, Any]:
    if kind == "decimal":  # exact, as the GraphQL Decimal scalar: a number in a string
        return {"type": ["string", "null"], "pattern": r"^-?\d+(\.\d+)?$"}
    return {"type": [kind, "null"]}


def _event(
    id: str, name: str, category: str, description: str, *fields: tuple[str, str]
) -> BusinessEvent:
    return BusinessEvent(id, name, category, description, fields)


CUSTOMER = ("CustomerAccount", "string"), ("OrganizationName", "string")
CATALOG: tuple[BusinessEvent, ...] = (
    _event(
        "CustomerCreatedBusinessEvent",
        "Customer created",
        "Accounts receivable",
        "A customer was created.",
        *CUSTOMER,
        ("CustomerGroupId", "string"),
        ("PartyType", "string"),
    ),
    _event(
        "CustomerCreditLimitChangedBusinessEvent",
        "Customer credit limit changed",
        "Accounts receivable",
        "A customer's credit limit changed.",
        *CUSTOMER,
        ("PreviousCreditLimit", "decimal"),
        ("CreditLimit", "decimal"),
    ),
    _event(
        "CustomerAddressChangedBusinessEvent",
        "Customer address changed",
        "Accounts receivable",
        "A customer's delivery or invoice address changed.",
        *CUSTOMER,
        ("DeliveryAddressStreet", "string"),
        ("DeliveryAddressCity", "string"),
        ("InvoiceAddressStreet", "string"),
        ("InvoiceAddressCity", "string"),
    ),
    _event(
        "CustomerPlacedOnHoldBusinessEvent",
        "Customer placed on hold",
        "Accounts receivable",
        "A customer's invoices, deliveries or payments were put on hold.",
        *CUSTOMER,
        ("OnHoldStatus", "string"),
    ),
    _event(
        "SalesOrderCreatedBusinessEvent",
        "Sales order created",
        "Sales and marketing",
        "A sales order was created.",
        ("SalesOrderNumber", "string"),
        ("OrderingCustomerAccountNumber", "string"),
        ("CurrencyCode", "string"),
    ),
    _event(
        "SalesOrderConfirmedBusinessEvent",
        "Sales order confirmed",
        "Sales and marketing",
        "A sales order left backorder: it is delivered or invoiced.",
        ("SalesOrderNumber", "string"),
        ("OrderingCustomerAccountNumber", "string"),
        ("SalesOrderStatus", "string"),
    ),
    _event(
        "VendorCreatedBusinessEvent",
        "Vendor created",
        "Accounts payable",
        "A vendor was created.",
        ("VendorAccountNumber", "string"),
        ("VendorOrganizationName", "string"),
    ),
    _event(
        "IntegrationSetupStageChangedBusinessEvent",
        "Integration setup stage changed",
        "Power Platform integration",
        "The setup of the Power Platform integration moved to another stage.",
        ("Environment", "string"),
        ("Stage", "string"),
        ("State", "string"),
    ),
    _event(
        "AddInInstalledBusinessEvent",
        "Add-in installed",
        "Power Platform integration",
        "An add-in was installed in the linked Dataverse environment.",
        ("Environment", "string"),
        ("AddIn", "string"),
    ),
    _event(
        "DualWriteMapStateChangedBusinessEvent",
        "Dual-write map state changed",
        "Dual-write",
        "A dual-write map changed state (running, paused, in error, ...).",
        ("Map", "string"),
        ("State", "string"),
    ),
    _event(
        "DualWriteRecordFailedBusinessEvent",
        "Dual-write record failed",
        "Dual-write",
        "The other side refused a row a dual-write map carried.",
        ("Map", "string"),
        ("Key", "object"),
        ("Message", "string"),
    ),
)
BY_ID = {e.id: e for e in CATALOG}
ADDRESS_FIELDS = (
    "DeliveryAddressStreet",
    "DeliveryAddressCity",
    "InvoiceAddressStreet",
    "InvoiceAddressCity",
)
VERBS = {ChangeKind.CREATE: "Created", ChangeKind.UPDATE: "Updated", ChangeKind.DELETE: "Deleted"}


def data_events(entity: EntityMetadata) -> list[BusinessEvent]:
    """Created, updated and deleted events of one visible entity: the row's fields (and,
    for updates and deletes, the row as it was, under `Before`)."""
    fields = tuple((f.name, JSON_TYPES[f.type]) for f in entity.fields)
    return [
        BusinessEvent(
            f"{entity.name}{verb}DataEvent",
            f"{entity.label or entity.name} {verb.lower()}",
            "Data events",
            f"A row of {entity.name} was {verb.lower()}.",
            fields + ((("Before", "object"),) if kind is not ChangeKind.CREATE else ()),
            entity=entity.name,
        )
        for kind, verb in VERBS.items()
    ]


@dataclass(frozen=True)
class Raised:
    """An event a committed change raised: its catalog entry and its own fields."""

    event: BusinessEvent
    legal_entity: str
    fields: dict[str, Any]


def raised(
    entity: EntityMetadata,
    kind: ChangeKind,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> list[Raised]:
    """The business events (not data events) a change to a row raises. Rows are by
    field name, enums as symbols."""
    row = after if after is not None else before
    if row is None:
        return []
    company = str(row.get(entity.company_field) or "").upper() if entity.company_field else ""
    found: list[Raised] = []

    def add(event_id: str) -> None:
        event = BY_ID[event_id]
        found.append(Raised(event, company, {name: row.get(name) for name, _ in event.fields}))

    def changed(name: str) -> bool:
        return before is not None and after is not None and before.get(name) != after.get(name)

    if entity.name == "CustomerV3":
        if kind is ChangeKind.CREATE:
            add("CustomerCreatedBusinessEvent")
        elif kind is ChangeKind.UPDATE:
            if changed("CreditLimit"):
                add("CustomerCreditLimitChangedBusinessEvent")
                assert before is not None
                found[-1].fields["PreviousCreditLimit"] = before.get("CreditLimit")
            if any(changed(name) for name in ADDRESS_FIELDS):
                add("CustomerAddressChangedBusinessEvent")
            if changed("OnHoldStatus") and row.get("OnHoldStatus") not in (None, "No"):
                add("CustomerPlacedOnHoldBusinessEvent")
    elif entity.name == "SalesOrderHeaderV2":
        if kind is ChangeKind.CREATE:
            add("SalesOrderCreatedBusinessEvent")
        elif (
            kind is ChangeKind.UPDATE
            and changed("SalesOrderStatus")
            and before is not None
            and before.get("SalesOrderStatus") in (None, "None", "Backorder")
            and row.get("SalesOrderStatus") in ("Delivered", "Invoiced")
        ):
            add("SalesOrderConfirmedBusinessEvent")
    elif entity.name == "VendorV2" and kind is ChangeKind.CREATE:
        add("VendorCreatedBusinessEvent")
    return found


RAISED_BY = {  # the entity whose changes raise each business event (see `raised`)
    "CustomerCreatedBusinessEvent": "CustomerV3",
    "CustomerCreditLimitChangedBusinessEvent": "CustomerV3",
    "CustomerAddressChangedBusinessEvent": "CustomerV3",
    "CustomerPlacedOnHoldBusinessEvent": "CustomerV3",
    "SalesOrderCreatedBusinessEvent": "SalesOrderHeaderV2",
    "SalesOrderConfirmedBusinessEvent": "SalesOrderHeaderV2",
    "VendorCreatedBusinessEvent": "VendorV2",
}


def raised_by(event_id: str) -> str | None:
    """The entity whose changes raise an event (a business or a data event), if any."""
    if event_id in RAISED_BY:
        return RAISED_BY[event_id]
    for verb in VERBS.values():
        name = event_id.removesuffix(f"{verb}DataEvent")
        if name != event_id:
            return name
    return None


def envelope(
    event: BusinessEvent,
    legal_entity: str,
    control_number: int,
    event_id: str,
    event_time: dt.datetime,
    user: str,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """The payload as delivered: the contract's envelope, then the event's fields."""
    return {
        "BusinessEventId": event.id,
        "BusinessEventLegalEntity": legal_entity,
        "ControlNumber": control_number,
        "EventId": event_id,
        "EventTime": event_time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "MajorVersion": event.major,
        "MinorVersion": event.minor,
        "InitiatingUser": user,
        **fields,
    }


def event_named(event_id: str, entities: Mapping[str, EntityMetadata]) -> BusinessEvent | None:
    """A catalog entry by its id: a business event, or a data event of these entities."""
    if event_id in BY_ID:
        return BY_ID[event_id]
    for verb in VERBS.values():
        name = event_id.removesuffix(f"{verb}DataEvent")
        if name != event_id and name in entities:
            return next(e for e in data_events(entities[name]) if e.id == event_id)
    return None
