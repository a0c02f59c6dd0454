"""Opaque keyset cursors: the ordered values of a row, tagged with the ordering.

A cursor names the fields it was made for, so a cursor from another ordering is
refused rather than silently misread.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.kernel.catalog import EntityMetadata, FieldType
from gateway.kernel.errors import BadUserInput
from gateway.kernel.plan import OrderTerm

CURSOR_VERSION = 1


def order_spec(order: Sequence[OrderTerm]) -> list[str]:
    return [term.field + (" desc" if term.descending else "") for term in order]


def encode_cursor(order: Sequence[OrderTerm], row: Mapping[str, Any]) -> str:
    """base64url, unpadded, of `[1, [order], [values]]` as JSON text laid out the way
    PostgreSQL's json_build_array lays it out, so the store can make the same cursor."""
    values = [_to_json(row[term.field]) for term in order]
    raw = json.dumps([CURSOR_VERSION, order_spec(order), values], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    cursor: str, entity: EntityMetadata, order: Sequence[OrderTerm]
) -> tuple[Any, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, spec, values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise BadUserInput(
            f"cursor {cursor[:40]!r} is malformed; pass a cursor from pageInfo or edges"
        ) from None
    expected = order_spec(order)
    if version != CURSOR_VERSION or spec != expected or len(values) != len(order):
        raise BadUserInput(
            "cursor was made for another ordering; "
            "use cursors from a response with the same orderBy"
        )
    try:
        return tuple(
            _from_json(entity.field(term.field).type, value)
            for term, value in zip(order, values, strict=True)
        )
    except (ValueError, TypeError, InvalidOperation):
        raise BadUserInput(f"cursor {cursor[:40]!r} holds values of the wrong type") from None


def _to_json(value: Any) -> Any:
    if isinstance(value, Decimal | dt.date | dt.datetime):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    return value


def _from_json(kind: FieldType, value: Any) -> Any:
    if value is None:
        return None
    if kind is FieldType.REAL:
        return Decimal(value)
    if kind is FieldType.DATE:
        return dt.date.fromisoformat(value)
    if kind is FieldType.UTC_DATETIME:
        return dt.datetime.fromisoformat(value)
    if kind in (FieldType.INT, FieldType.INT64, FieldType.ENUM):
        if not isinstance(value, int):
            raise TypeError(value)
        return value
    if not isinstance(value, str):
        raise TypeError(value)
    return value
