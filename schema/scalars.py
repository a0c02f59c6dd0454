"""Scalars beyond GraphQL's own: F&O Int64 as `Long`; Decimal, Date and DateTime keep
their precision as strings (Strawberry's built-ins)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

from gateway.kernel.catalog import FieldType


def _parse_long(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"Long cannot represent {value!r}")
    return int(value)


Long = NewType("Long", int)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    Long: strawberry.scalar(
        name="Long",
        description="A 64-bit integer (F&O Int64, such as a RecId).",
        serialize=int,
        parse_value=_parse_long,
    )
}

SCALARS: dict[FieldType, Any] = {
    FieldType.STRING: str,
    FieldType.INT: int,
    FieldType.INT64: Long,
    FieldType.REAL: Decimal,
    FieldType.DATE: dt.date,
    FieldType.UTC_DATETIME: dt.datetime,
}
