"""A change to one row, and the checks it must pass before any store sees it.

Every write, whatever its origin, is a `Change`. `validate` checks the values
against the entity's metadata (required, read-only, types, lengths, scale, enum
members) and reports every problem at once, so a refused write changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, StrEnum
from functools import lru_cache
from typing import Any

from gateway.kernel.catalog import EntityField, EntityMetadata, EnumType, FieldType, Operation
from gateway.kernel.errors import BadUserInput

VERSION_FIELDS = ("RecVersion", "versionnumber")
"""Row versions, F&O's and Dataverse's: every update adds one, so a writer can tell it
read a stale row."""


def version_field(entity: EntityMetadata) -> str | None:
    return next((name for name in VERSION_FIELDS if entity.has_field(name)), None)


class ChangeKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Change:
    entity: str
    kind: ChangeKind
    key: Mapping[str, Any]  # key field → value (the company in lower case)
    values: Mapping[str, Any] = field(default_factory=dict)  # field → value, as given
    expected_version: int | None = None
    actor: str = ""
    origin: str = "graphql"
    if_match: str | None = None  # the ETag the writer read (OData stores)


_OPERATION = {
    ChangeKind.CREATE: Operation.CREATE,
    ChangeKind.UPDATE: Operation.UPDATE,
    ChangeKind.DELETE: Operation.DELETE,
}


def validate(entity: EntityMetadata, change: Change) -> dict[str, Any]:
    """The values to store (enum members as their numbers), or BAD_USER_INPUT listing
    every problem."""
    if _OPERATION[change.kind] not in entity.operations:
        raise BadUserInput(f"{entity.name} cannot be {change.kind.value}d through the gateway")
    problems: list[str] = []
    stored: dict[str, Any] = {}
    for name, value in change.values.items():
        found = entity.field(name) if entity.has_field(name) else None
        if found is None:
            problems.append(f"{entity.name} has no field {name}")
        elif found.is_key and change.kind is ChangeKind.UPDATE:
            problems.append(f"{name} is part of the key and cannot change; create a new row")
        elif found.read_only or found.name in VERSION_FIELDS:
            problems.append(f"{name} is read-only")
        else:
            problem, converted = _check(found, value)
            if problem:
                problems.append(f"{name} {problem}")
            else:
                stored[name] = converted
    if change.kind is ChangeKind.CREATE:
        values, key = change.values, change.key
        problems += [
            f"{f.name} ({f.label or f.name}) is required"
            for f in entity.mandatory
            if f.name not in VERSION_FIELDS
            and key.get(f.name) is None
            and f.name not in values  # a given null is reported by _check
        ]
    if problems:
        raise BadUserInput(
            f"{entity.name} was not {change.kind.value}d: " + "; ".join(problems),
            problems=problems,
        )
    return stored


class CreateCheck:
    """`validate` for many new rows with the same fields, as a bulk copy writes them:
    what depends only on the field names is decided once, and each field's check is
    chosen for its type up front."""

    def __init__(
        self, entity: EntityMetadata, names: Sequence[str], supplied: Sequence[str] = ()
    ) -> None:
        """`names`: the fields each row gives; `supplied`: fields filled in later (new
        row ids), which count as given."""
        self._entity = entity
        self._static: list[str] = []  # problems every row has
        self._checks: list[tuple[str, Callable[[Any], Any]]] = []
        if Operation.CREATE not in entity.operations:
            self._static.append(f"{entity.name} cannot be created through the gateway")
        for name in names:
            if not entity.has_field(name):
                self._static.append(f"{entity.name} has no field {name}")
                continue
            spec = entity.field(name)
            if spec.read_only or spec.name in VERSION_FIELDS:
                self._static.append(f"{name} is read-only")
            else:
                self._checks.append((name, _fast_check(spec)))
        given = {*names, *supplied}
        self._static += [
            f"{f.name} ({f.label or f.name}) is required"
            for f in entity.mandatory
            if f.name not in VERSION_FIELDS and f.name not in given
        ]

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The values to store, or BAD_USER_INPUT as `validate` words it."""
        problems = list(self._static)
        stored: dict[str, Any] = {}
        for name, check in self._checks:
            try:
                stored[name] = check(row[name])
            except _Invalid as exc:
                problems.append(f"{name} {exc.args[0]}")
        if problems:
            raise BadUserInput(
                f"{self._entity.name} was not created: " + "; ".join(problems),
                problems=problems,
            )
        return stored


class _Invalid(Exception):
    pass


def _fast_check(spec: EntityField) -> Callable[[Any], Any]:
    """A check of one field's values, specialised for its type (`_check` otherwise)."""
    nullable, length = spec.nullable, spec.length
    if spec.type is FieldType.STRING:

        def text(value: Any) -> Any:
            if value is None:
                if nullable:
                    return None
                raise _Invalid("cannot be empty")
            if type(value) is not str:
                raise _Invalid("must be text")
            if length is not None and len(value) > length:
                raise _Invalid(f"is longer than {length} characters ({len(value)})")
            return value

        return text
    if spec.type is FieldType.ENUM:
        assert spec.enum is not None
        symbols, numbers = _members(spec.enum)
        accepted: dict[Any, int] = {**{n: n for n in numbers}, **symbols}

        def member(value: Any) -> Any:
            found = accepted.get(value)
            if found is not None:
                return found
            problem, converted = _check(spec, value)  # None, or an Enum, or wrong
            if problem:
                raise _Invalid(problem)
            return converted

        return member

    def other(value: Any) -> Any:
        problem, converted = _check(spec, value)
        if problem:
            raise _Invalid(problem)
        return converted

    return other


@lru_cache(maxsize=1024)
def _members(enum: EnumType) -> tuple[dict[str, int], frozenset[int]]:
    symbols = {m.symbol: m.value for m in enum.members}
    return symbols, frozenset(symbols.values())


def _check(spec: EntityField, value: Any) -> tuple[str | None, Any]:
    if value is None:
        return (None, None) if spec.nullable else ("cannot be empty", None)
    kind = spec.type
    if kind is FieldType.ENUM:
        assert spec.enum is not None
        number = value.value if isinstance(value, Enum) else value
        symbols, numbers = _members(spec.enum)
        if isinstance(number, str) and number in symbols:
            number = symbols[number]
        if number not in numbers:
            return f"must be one of {', '.join(symbols)}", None
        return None, number
    if kind is FieldType.STRING:
        if not isinstance(value, str):
            return "must be text", None
        if spec.length is not None and len(value) > spec.length:
            return f"is longer than {spec.length} characters ({len(value)})", None
        return None, value
    if kind in (FieldType.INT, FieldType.INT64):
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number", None
        limit = 2**31 if kind is FieldType.INT else 2**63
        return (None, value) if -limit <= value < limit else ("is out of range", None)
    if kind is FieldType.REAL:
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value))
        except ArithmeticError:
            return "must be a number", None
        if not number.is_finite():
            return "must be a finite number", None
        exponent = number.as_tuple().exponent
        if spec.scale is not None and isinstance(exponent, int) and -exponent > spec.scale:
            return f"has more than {spec.scale} decimals", None
        return None, number
    if kind is FieldType.DATE:
        ok = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        return (None, value) if ok else ("must be a date", None)
    if kind is FieldType.UTC_DATETIME:
        if not isinstance(value, dt.datetime):
            return "must be a date and time", None
        return None, value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return f"has a type ({kind}) that cannot be written", None


@dataclass(frozen=True)
class TrackedChange:
    """A change another client wrote straight into a store, as its change log holds it:
    the row's key, and for an update or a delete the row as it was."""

    id: int
    entity: EntityMetadata
    kind: ChangeKind
    key: dict[str, Any]
    before: dict[str, Any] | None
