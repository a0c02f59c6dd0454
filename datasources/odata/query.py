"""Read plans rendered as OData query options, and OData values read back as the
kernel's (enum members as their numbers, decimals exact, F&O's empty date as null).

Filters keep SQL's three-valued logic, which the gateway's other stores and its
tests follow: a comparison with an empty field is neither true nor false, so `not`
and `neq` never match rows whose field is empty. OData compares nulls two-valued
(`null ne 'x'` is true), so each filter is rendered twice, as the condition under
which it is true and the one under which it is false, both free of nulls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from datasources.odata.csdl import Service
from datasources.odata.endpoint import Dialect
from gateway.kernel.catalog import Cardinality, EntityField, EntityMetadata, FieldType
from gateway.kernel.errors import BadUserInput, UpstreamFailed
from gateway.kernel.plan import (
    And,
    Compare,
    Filter,
    Not,
    Op,
    Or,
    OrderTerm,
    Quantifier,
    RelationFilter,
)

TRUE, FALSE = "true", "false"
EMPTY_DATE = dt.date(1900, 1, 1)  # what F&O shows for a date that was never set
_RELATIONAL = {Op.EQ: "eq", Op.NEQ: "ne", Op.GT: "gt", Op.GTE: "ge", Op.LT: "lt", Op.LTE: "le"}


@dataclass(frozen=True)
class Truth:
    """When a filter is true, and when it is false (neither: the field was empty)."""

    true: str
    false: str


class Renderer:
    def __init__(self, service: Service, dialect: Dialect) -> None:
        self.service = service
        self.dialect = dialect

    # values ------------------------------------------------------------------------

    def literal(self, entity: EntityMetadata, spec: EntityField, value: Any) -> str:
        if value is None:
            return "null"
        match spec.type:
            case FieldType.STRING:
                if (entity.name, spec.name) in self.service.guids:
                    return str(value)
                return "'" + str(value).replace("'", "''") + "'"
            case FieldType.INT | FieldType.INT64:
                return str(int(value))
            case FieldType.REAL:
                return format(Decimal(str(value)), "f")
            case FieldType.DATE:
                return value.isoformat()  # type: ignore[no-any-return]
            case FieldType.UTC_DATETIME:
                moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
                return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")  # type: ignore[no-any-return]
            case FieldType.ENUM:
                assert spec.enum is not None
                symbol = spec.enum.symbol_of(value)
                qualified = self.service.enum_names.get(spec.enum.name)
                return f"{qualified}'{symbol}'" if qualified else f"'{symbol}'"
        raise AssertionError(spec.type)

    def payload(self, entity: EntityMetadata, values: Mapping[str, Any]) -> dict[str, Any]:
        """Values as a request body carries them (enums by symbol, dates in ISO form)."""
        body: dict[str, Any] = {}
        for name, value in values.items():
            spec = entity.field(name)
            if value is None or spec.type in (FieldType.STRING, FieldType.INT, FieldType.INT64):
                body[name] = value
            elif spec.type is FieldType.REAL:
                body[name] = Decimal(str(value))
            elif spec.type is FieldType.ENUM:
                assert spec.enum is not None
                body[name] = spec.enum.symbol_of(value)
            else:
                body[name] = self.literal(entity, spec, value)
        return body

    def key_path(self, entity: EntityMetadata, key: Mapping[str, Any]) -> str:
        """`CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')`"""
        parts = ",".join(f"{f.name}={self.literal(entity, f, key[f.name])}" for f in entity.key)
        return f"{entity.collection_name}({parts})"

    # filters -----------------------------------------------------------------------

    def where(self, entity: EntityMetadata, where: Filter | None, prefix: str = "") -> str:
        return TRUE if where is None else self.truth(entity, where, prefix, 0).true

    def truth(self, entity: EntityMetadata, where: Filter, prefix: str, depth: int) -> Truth:
        if isinstance(where, Compare):
            return self._compare(entity, entity.field(where.field), prefix, where.op, where.value)
        if isinstance(where, And):
            parts = [self.truth(entity, f, prefix, depth) for f in where.items]
            return Truth(all_of(p.true for p in parts), any_of(p.false for p in parts))
        if isinstance(where, Or):
            parts = [self.truth(entity, f, prefix, depth) for f in where.items]
            return Truth(any_of(p.true for p in parts), all_of(p.false for p in parts))
        if isinstance(where, Not):
            inner = self.truth(entity, where.item, prefix, depth)
            return Truth(inner.false, inner.true)
        return self._relation(where, prefix, depth)

    def _compare(
        self, entity: EntityMetadata, spec: EntityField, prefix: str, op: Op, value: Any
    ) -> Truth:
        path = prefix + spec.name
        present = f"{path} ne null"
        if op is Op.IS_NULL:
            absent = f"{path} eq null"
            return Truth(absent, present) if value else Truth(present, absent)
        if op in (Op.IN, Op.NIN):
            values = [self.literal(entity, spec, v) for v in value if v is not None]
            if not values:
                matched = Truth(FALSE, present)
            elif self.dialect is Dialect.STANDARD:
                listed = f"{path} in ({','.join(values)})"
                matched = Truth(all_of([present, listed]), all_of([present, f"not ({listed})"]))
            else:  # F&O has no `in`
                matched = Truth(
                    all_of([present, any_of(f"{path} eq {v}" for v in values)]),
                    all_of([present, *(f"{path} ne {v}" for v in values)]),
                )
            return matched if op is Op.IN else Truth(matched.false, matched.true)
        if op in (Op.CONTAINS, Op.STARTS_WITH):
            found = self._text_match(path, op, str(value))
            return Truth(all_of([present, found]), all_of([present, f"not ({found})"]))
        if value is None:  # neither true nor false, as in SQL
            return Truth(FALSE, FALSE)
        literal = self.literal(entity, spec, value)
        compared = f"{path} {_RELATIONAL[op]} {literal}"
        negated = f"{path} {_RELATIONAL[_NEGATED[op]]} {literal}"
        return Truth(all_of([present, compared]), all_of([present, negated]))

    def _text_match(self, path: str, op: Op, value: str) -> str:
        if self.dialect is Dialect.FNO:
            if "*" in value:
                raise BadUserInput(
                    "F&O matches text with * as its wildcard, so a value with * in it "
                    "cannot be searched for; leave the * out"
                )
            pattern = f"*{value}*" if op is Op.CONTAINS else f"{value}*"
            return f"{path} eq '{pattern.replace(chr(39), chr(39) * 2)}'"
        function = "contains" if op is Op.CONTAINS else "startswith"
        quoted = value.lower().replace("'", "''")
        return f"{function}(tolower({path}),'{quoted}')"

    def _relation(self, where: RelationFilter, prefix: str, depth: int) -> Truth:
        nav = prefix + where.relation.name
        if where.relation.cardinality is Cardinality.ONE:
            inner = self.truth(where.target, where.where, nav + "/", depth)
            return Truth(all_of([f"{nav} ne null", inner.true]), f"not ({inner.true})")
        variable = f"r{depth}"
        inner = self.truth(where.target, where.where, variable + "/", depth + 1)
        some = f"{nav}/any({variable}:{inner.true})"
        if where.quantifier is Quantifier.SOME:
            return Truth(some, f"not {some}")
        if where.quantifier is Quantifier.NONE:
            return Truth(f"not {some}", some)
        violation = f"{nav}/any({variable}:not ({inner.true}))"
        return Truth(f"not {violation}", violation)

    # ordering and paging -----------------------------------------------------------

    def order(self, entity: EntityMetadata, terms: Sequence[OrderTerm]) -> str:
        """`$orderby`. OData sorts empty values first going up and last going down; a
        term wanting them at the other end sorts on `field eq null` first."""
        items = []
        for term in terms:
            direction = "desc" if term.descending else "asc"
            natural = term.descending is not term.nulls_first
            if entity.field(term.field).nullable and not natural:
                items.append(f"{term.field} eq null {'desc' if term.nulls_first else 'asc'}")
            items.append(f"{term.field} {direction}")
        return ",".join(items)

    def after(
        self, entity: EntityMetadata, order: Sequence[OrderTerm], values: Sequence[Any]
    ) -> str:
        """Rows strictly after `values` in `order` (reversed terms for 'before')."""
        branches = []
        for i, term in enumerate(order):
            equal = [self.equal(entity, order[j].field, values[j]) for j in range(i)]
            branches.append(all_of([*equal, self._beyond(entity, term, values[i])]))
        return any_of(branches)

    def equal(self, entity: EntityMetadata, name: str, value: Any) -> str:
        return f"{name} eq {self.literal(entity, entity.field(name), value)}"

    def _beyond(self, entity: EntityMetadata, term: OrderTerm, value: Any) -> str:
        spec = entity.field(term.field)
        if value is None:  # empty values sit at one end of the order
            return f"{term.field} ne null" if term.nulls_first else FALSE
        literal = self.literal(entity, spec, value)
        beyond = f"{term.field} {'lt' if term.descending else 'gt'} {literal}"
        if term.nulls_first or not spec.nullable:
            return beyond
        return any_of([beyond, f"{term.field} eq null"])

    # rows --------------------------------------------------------------------------

    def row(
        self, entity: EntityMetadata, found: Mapping[str, Any], columns: Sequence[str]
    ) -> dict[str, Any]:
        return {name: self.value(entity.field(name), found.get(name)) for name in columns}

    def value(self, spec: EntityField, value: Any) -> Any:
        if value is None:
            return None
        try:
            match spec.type:
                case FieldType.REAL:
                    return value if isinstance(value, Decimal) else Decimal(str(value))
                case FieldType.ENUM:
                    assert spec.enum is not None
                    if isinstance(value, int):
                        return value
                    symbol = value.rsplit("'", 2)[-2] if value.endswith("'") else value
                    for member in spec.enum.members:
                        if member.symbol == symbol:
                            return member.value
                    raise ValueError(f"{symbol} is not a member of {spec.enum.name}")
                case FieldType.DATE:
                    day = dt.date.fromisoformat(str(value)[:10])
                    return None if day == EMPTY_DATE else day
                case FieldType.UTC_DATETIME:
                    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                    return None if moment.date() == EMPTY_DATE else moment
        except (ValueError, InvalidOperation) as exc:
            raise UpstreamFailed(
                f"the OData service sent {spec.name} as {value!r}: {exc}"
            ) from None
        return value


_NEGATED = {
    Op.EQ: Op.NEQ,
    Op.NEQ: Op.EQ,
    Op.GT: Op.LTE,
    Op.GTE: Op.LT,
    Op.LT: Op.GTE,
    Op.LTE: Op.GT,
}


def all_of(items: Iterable[str | None]) -> str:
    """`a and b …`, simplified: absent and `true` parts dropped, `false` absorbing."""
    parts = [p for p in items if p is not None and p != TRUE]
    if FALSE in parts:
        return FALSE
    if not parts:
        return TRUE
    return parts[0] if len(parts) == 1 else " and ".join(f"({p})" for p in parts)


def any_of(items: Iterable[str]) -> str:
    """`a or b …`, simplified: `false` parts dropped, `true` absorbing."""
    parts = [p for p in items if p != FALSE]
    if TRUE in parts:
        return TRUE
    if not parts:
        return FALSE
    return parts[0] if len(parts) == 1 else " or ".join(f"({p})" for p in parts)
