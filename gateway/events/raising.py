"""The outbox rows a committed change writes: the business events it raises (see
`kernel.events.raised`) and its data event, with the row as it was for updates and
deletes. Enums travel by symbol."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from gateway.kernel.catalog import EntityMetadata
from gateway.kernel.change import ChangeKind
from gateway.kernel.errors import CatalogError
from gateway.kernel.events import VERBS, BusinessEvent, data_events, raised
from gateway.kernel.json import dumps, plain


def outbox_rows(
    entity: EntityMetadata,
    kind: ChangeKind,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    user: str,
) -> list[dict[str, Any]]:
    old, new = _symbols(entity, before), _symbols(entity, after)
    row = new if new is not None else old
    if row is None:
        return []
    company = str(row.get(entity.company_field) or "").upper() if entity.company_field else ""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def outbox_row(event: BusinessEvent, fields: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "business_event": event.id,
            "major": event.major,
            "minor": event.minor,
            "category": event.category,
            "legal_entity": company,
            "entity": event.entity,
            "payload": dumps(plain(dict(fields))),
            "initiating_user": user,
            "at": now,
        }

    rows = [outbox_row(r.event, r.fields) for r in raised(entity, kind, old, new)]
    data = next(e for e in data_events(entity) if e.id.endswith(f"{VERBS[kind]}DataEvent"))
    fields = dict(row) if kind is not ChangeKind.DELETE else dict(old or {})
    if kind is not ChangeKind.CREATE:
        fields["Before"] = old
    rows.append(outbox_row(data, fields))
    return rows


def _symbols(entity: EntityMetadata, row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    named = dict(row)
    for spec in entity.fields:
        value = named.get(spec.name)
        if spec.enum is not None and isinstance(value, int):
            with suppress(CatalogError):  # a value the enum does not know stays a number
                named[spec.name] = spec.enum.symbol_of(value)
    return named
