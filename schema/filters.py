"""Operator inputs shared by every entity: one per scalar kind, plus ordering enums."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry

from gateway.kernel.catalog import FieldType
from schema.scalars import Long


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.enum(description="Where rows with no value sort.")
class NullsOrder(Enum):
    FIRST = "first"
    LAST = "last"


def _operators(name: str, kind: Any, ordered: bool, text: bool) -> Any:
    fields: dict[str, Any] = {"eq": kind, "neq": kind}
    if ordered:
        fields |= {"gt": kind, "gte": kind, "lt": kind, "lte": kind}
    fields |= {"in_": list[kind], "nin": list[kind]}
    if text:
        fields |= {"contains": kind, "startsWith": kind}
    fields["isNull"] = bool
    namespace: dict[str, Any] = {
        "__annotations__": {k: v | None for k, v in fields.items()},
    }
    for python_name in fields:
        graphql_name = "in" if python_name == "in_" else python_name
        namespace[python_name] = strawberry.field(name=graphql_name, default=strawberry.UNSET)
    cls = type(name, (), namespace)
    return strawberry.input(
        cls, description=f"Conditions on a {kind_label(name)} field; all must hold."
    )


def kind_label(name: str) -> str:
    return name.removesuffix("Filter").lower()


OPERATOR_INPUTS: dict[FieldType, Any] = {
    FieldType.STRING: _operators("StringFilter", str, ordered=True, text=True),
    FieldType.INT: _operators("IntFilter", int, ordered=True, text=False),
    FieldType.INT64: _operators("LongFilter", Long, ordered=True, text=False),
    FieldType.REAL: _operators("DecimalFilter", Decimal, ordered=True, text=False),
    FieldType.DATE: _operators("DateFilter", dt.date, ordered=True, text=False),
    FieldType.UTC_DATETIME: _operators("DateTimeFilter", dt.datetime, ordered=True, text=False),
}


def enum_operators(name: str, enum_ref: Any) -> Any:
    """`eq`, `neq`, `in`, `nin`, `isNull` for one enum, matched by symbol."""
    annotations = {
        "eq": enum_ref | None,
        "neq": enum_ref | None,
        "in_": list[enum_ref] | None,
        "nin": list[enum_ref] | None,
        "isNull": bool | None,
    }
    namespace: dict[str, Any] = {"__annotations__": annotations}
    for python_name in annotations:
        graphql_name = "in" if python_name == "in_" else python_name
        namespace[python_name] = strawberry.field(name=graphql_name, default=strawberry.UNSET)
    return strawberry.input(type(name, (), namespace))
