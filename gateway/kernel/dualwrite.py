"""Dual-write maps: what binds an F&O entity to a Dataverse table, the checks a map
must pass before it runs, the map states, and the transforms between the two rows.

Pure: the dual-write service stores maps and runs them; this decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from gateway.kernel.catalog import EntityField, EntityMetadata, FieldType
from gateway.kernel.change import VERSION_FIELDS
from gateway.kernel.errors import BadUserInput

NUMBERS = {FieldType.INT, FieldType.INT64, FieldType.REAL}


class Direction(StrEnum):
    BOTH = "both"
    TO_DATAVERSE = "to_dataverse"
    TO_FNO = "to_fno"

    def reaches(self, side: Side) -> bool:
        return self is Direction.BOTH or self.value == f"to_{side.value}"


class Side(StrEnum):
    FNO = "fno"
    DATAVERSE = "dataverse"

    @property
    def other(self) -> Side:
        return Side.DATAVERSE if self is Side.FNO else Side.FNO

    @property
    def label(self) -> str:
        """The side's name in messages."""
        return "F&O" if self is Side.FNO else "Dataverse"


@dataclass(frozen=True)
class Lookup:
    """The field names a Dataverse row: the F&O side holds its `by` value (an account
    number), the Dataverse side its `returns` value (the account's row id)."""

    table: str
    by: str
    returns: str
    company: str | None = None  # the table's company column, when the lookup is per company


@dataclass(frozen=True)
class FieldMapping:
    fno: str  # "" for a default-only mapping towards F&O
    dataverse: str  # "" for a default-only mapping towards Dataverse
    direction: Direction
    default: Any = None  # used when the source has no value (or there is no source)
    value_map: tuple[tuple[Any, Any], ...] = ()  # (F&O value, Dataverse value)
    lookups: tuple[Lookup, ...] = ()
    """The rows the value may name, tried in order; more than one is a polymorphic
    lookup (a customer that is an account or a contact)."""

    def name_on(self, side: Side) -> str:
        return self.fno if side is Side.FNO else self.dataverse


@dataclass(frozen=True)
class Condition:
    """`field == value` (or `!=`) on one side's row; values are enum symbols or text."""

    field: str
    value: str
    equal: bool = True


@dataclass(frozen=True)
class DualWriteMap:
    name: str
    fno_entity: str
    dataverse_table: str
    company_specific: bool
    key: tuple[tuple[str, str], ...]  # (F&O field, Dataverse column)
    fields: tuple[FieldMapping, ...]
    fno_filter: tuple[Condition, ...] = ()
    dataverse_filter: tuple[Condition, ...] = ()
    depends_on: tuple[str, ...] = ()
    version: str = "1.0.0"

    def entity_on(self, side: Side) -> str:
        return self.fno_entity if side is Side.FNO else self.dataverse_table

    def filter_on(self, side: Side) -> tuple[Condition, ...]:
        return self.fno_filter if side is Side.FNO else self.dataverse_filter


class MapState(StrEnum):
    NOT_RUNNING = "NOT_RUNNING"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RESUMING = "RESUMING"
    ERROR = "ERROR"


class MapAction(StrEnum):
    RUN = "RUN"
    STOP = "STOP"
    PAUSE = "PAUSE"
    RESUME = "RESUME"


def map_actions(state: MapState) -> list[MapAction]:
    return {
        MapState.NOT_RUNNING: [MapAction.RUN],
        MapState.RUNNING: [MapAction.STOP, MapAction.PAUSE],
        MapState.PAUSED: [MapAction.RESUME, MapAction.STOP],
        MapState.ERROR: [MapAction.RESUME, MapAction.RUN, MapAction.STOP],
    }.get(state, [])


class AlertAction(StrEnum):
    """What an alert rule does when a map's errors pile up."""

    NOTIFY = "NOTIFY"
    PAUSE = "PAUSE"
    STOP = "STOP"


class Master(StrEnum):
    """Which side wins when both changed a row (Microsoft's default: Dataverse)."""

    DATAVERSE = "DATAVERSE"
    FNO = "FNO"


# parsing


def parse_condition(text: str) -> tuple[Condition, ...]:
    """`PartyType == Organization && Name != 'x'`: the filter grammar maps use."""
    conditions = []
    for part in (p.strip() for p in text.split("&&") if p.strip()):
        for operator, equal in (("!=", False), ("==", True)):
            if operator in part:
                name, _, value = part.partition(operator)
                conditions.append(Condition(name.strip(), value.strip().strip("'\""), equal))
                break
        else:
            raise BadUserInput(f"cannot read the filter {part!r}: write `Field == value`")
    return tuple(conditions)


def parse_map(data: Mapping[str, Any]) -> DualWriteMap:
    try:
        return DualWriteMap(
            name=str(data["name"]),
            fno_entity=str(data["fno_entity"]),
            dataverse_table=str(data["dataverse_table"]),
            company_specific=bool(data.get("company_specific", False)),
            key=tuple((str(a), str(b)) for a, b in data["key"]),
            fields=tuple(
                FieldMapping(
                    fno=str(f.get("fno", "")),
                    dataverse=str(f.get("dataverse", "")),
                    direction=Direction(f.get("direction", "both")),
                    default=f.get("default"),
                    value_map=tuple((a, b) for a, b in f.get("value_map", ())),
                    lookups=_lookups(f.get("lookup")),
                )
                for f in data["fields"]
            ),
            fno_filter=parse_condition(str(data.get("fno_filter") or "")),
            dataverse_filter=parse_condition(str(data.get("dataverse_filter") or "")),
            depends_on=tuple(str(d) for d in data.get("depends_on", ())),
            version=str(data.get("version", "1.0.0")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadUserInput(f"the map definition is malformed: {exc}") from None


def _lookups(data: Any) -> tuple[Lookup, ...]:
    """One lookup (an object), or a polymorphic one (a list of them)."""
    if not data:
        return ()
    return tuple(Lookup(**one) for one in (data if isinstance(data, list) else [data]))


def _lookups_to_json(lookups: tuple[Lookup, ...]) -> Any:
    found = [
        {"table": lk.table, "by": lk.by, "returns": lk.returns, "company": lk.company}
        for lk in lookups
    ]
    return None if not found else found[0] if len(found) == 1 else found


def map_to_dict(m: DualWriteMap) -> dict[str, Any]:
    """The definition as stored: what `parse_map` reads back."""

    def condition(conditions: tuple[Condition, ...]) -> str:
        return " && ".join(f"{c.field} {'==' if c.equal else '!='} {c.value}" for c in conditions)

    return {
        "name": m.name,
        "version": m.version,
        "fno_entity": m.fno_entity,
        "dataverse_table": m.dataverse_table,
        "company_specific": m.company_specific,
        "fno_filter": condition(m.fno_filter),
        "dataverse_filter": condition(m.dataverse_filter),
        "key": [list(pair) for pair in m.key],
        "fields": [
            {
                "fno": f.fno,
                "dataverse": f.dataverse,
                "direction": f.direction.value,
                "default": f.default,
                "value_map": [list(pair) for pair in f.value_map],
                "lookup": _lookups_to_json(f.lookups),
            }
            for f in m.fields
        ],
        "depends_on": list(m.depends_on),
    }


# checking


@dataclass(frozen=True)
class Problem:
    code: str
    message: str


def check_map(
    m: DualWriteMap,
    fno: EntityMetadata | None,
    dataverse: EntityMetadata | None,
    tables: Mapping[str, EntityMetadata] | None = None,
) -> list[Problem]:
    """Every reason the map cannot run (empty: it can). `tables` are the Dataverse
    tables lookups may name."""
    if fno is None or dataverse is None:
        missing = m.fno_entity if fno is None else m.dataverse_table
        return [Problem("TABLE_MISSING", f"{missing} is not published; refresh the catalog")]
    sides = {Side.FNO: fno, Side.DATAVERSE: dataverse}
    problems: list[Problem] = []
    if not dataverse.has_field("versionnumber"):
        problems.append(Problem("NO_ROW_VERSION", f"{dataverse.name} has no versionnumber"))
    if m.company_specific != fno.company_scoped:
        scope = "company-specific" if fno.company_scoped else "cross-company"
        problems.append(
            Problem(
                "COMPANY_SCOPE_MISMATCH",
                f"{fno.name} is {scope} but the map is "
                f"{'company-specific' if m.company_specific else 'cross-company'}",
            )
        )
    for mapping in m.fields:
        for side in Side:
            name = mapping.name_on(side)
            if name and not sides[side].has_field(name):
                problems.append(Problem("FIELD_MISSING", f"{sides[side].name} has no field {name}"))
    for f in m.fields:
        for lookup in f.lookups:
            table = (tables or {}).get(lookup.table)
            wanted = [lookup.by, lookup.returns, *([lookup.company] if lookup.company else [])]
            if table is None or not all(table.has_field(n) for n in wanted):
                problems.append(
                    Problem(
                        "LOOKUP_INVALID",
                        f"{f.fno} = {f.dataverse} looks up {lookup.table}.{lookup.by}, which "
                        "the Dataverse store does not publish",
                    )
                )
    if problems:
        return problems
    used = [side for side in Side if any(f.direction.reaches(side) for f in m.fields)]
    for fno_key, dv_key in m.key:
        if not any(
            f.fno == fno_key
            and f.dataverse == dv_key
            and all(f.direction.reaches(side) for side in used)
            for f in m.fields
        ):
            both = " in both directions" if len(used) == 2 else ""
            problems.append(
                Problem(
                    "KEY_NOT_MAPPED_BOTH_WAYS",
                    f"the key {fno_key} = {dv_key} must be mapped{both} wherever the map syncs",
                )
            )
    for target in Side:
        toward = [f for f in m.fields if f.direction.reaches(target)]
        if not toward:
            continue
        entity = sides[target]
        names = [f.name_on(target) for f in toward if f.name_on(target)]
        problems += [
            Problem("DUPLICATE_TARGET", f"{entity.name}.{n} is mapped more than once")
            for n in sorted({n for n in names if names.count(n) > 1})
        ]
        for mapping in toward:
            name = mapping.name_on(target)
            if not name:
                continue
            spec = entity.field(name)
            if spec.read_only or spec.name in VERSION_FIELDS:
                problems.append(
                    Problem("READ_ONLY_TARGET_MAPPED", f"{entity.name}.{name} is read-only")
                )
            source = mapping.name_on(target.other)
            if source and not _compatible(sides[target.other].field(source), spec, mapping):
                origin = sides[target.other]
                problems.append(
                    Problem(
                        "TYPE_MISMATCH",
                        f"{origin.name}.{source} ({origin.field(source).type}) cannot fill "
                        f"{entity.name}.{name} ({spec.type}) without a value map",
                    )
                )
        covered = set(names)
        for spec in entity.fields:
            if (
                not spec.nullable
                and not spec.read_only
                and spec.name not in VERSION_FIELDS
                and spec.name not in covered
                and not (target is Side.DATAVERSE and spec.is_key)  # a row id it makes
            ):
                problems.append(
                    Problem(
                        "MANDATORY_TARGET_UNMAPPED",
                        f"{entity.name}.{spec.name} is mandatory: map it, or give it a default",
                    )
                )
    return problems


def _compatible(source: EntityField, target: EntityField, mapping: FieldMapping) -> bool:
    if mapping.value_map or mapping.lookups:
        return True
    if source.type is target.type:
        if source.type is FieldType.ENUM:
            assert source.enum is not None
            assert target.enum is not None
            wanted = {m.symbol for m in source.enum.members}
            return wanted <= {m.symbol for m in target.enum.members}
        return True
    return source.type in NUMBERS and target.type in NUMBERS


# transforming


def passes(m: DualWriteMap, side: Side, entity: EntityMetadata, row: Mapping[str, Any]) -> bool:
    """Whether a row of `side` is in scope of the map's filter there."""
    return in_scope(m, side, entity)(row)


def in_scope(
    m: DualWriteMap, side: Side, entity: EntityMetadata
) -> Callable[[Mapping[str, Any]], bool]:
    """The map's filter on `side`, decided once for many rows: each condition compares
    the stored value (an enum's number) with what it names."""
    tests: list[tuple[str, frozenset[Any], bool]] = []
    for condition in m.filter_on(side):
        spec = entity.field(condition.field)
        named: set[Any] = {condition.value}
        if spec.enum is not None:
            named |= {e.value for e in spec.enum.members if e.symbol == condition.value}
        elif spec.type in NUMBERS:
            named |= set(_numbers(condition.value))
        tests.append((condition.field, frozenset(named), condition.equal))
    if not tests:
        return lambda row: True

    def check(row: Mapping[str, Any]) -> bool:
        for name, named, equal in tests:
            value = row.get(name)
            if (value in named or str(value) in named) != equal:
                return False
        return True

    return check


def _numbers(text: str) -> list[Any]:
    try:
        return [int(text), Decimal(text)]
    except (ValueError, ArithmeticError):
        return []


class Carrier:
    """Carries rows of one side through a map to the other side's values. Made once
    for many rows: the per-field decisions are taken here, not per row."""

    def __init__(
        self,
        m: DualWriteMap,
        source: Side,
        source_entity: EntityMetadata,
        target_entity: EntityMetadata,
    ) -> None:
        target = source.other
        self._fields: list[tuple[str, str, Callable[[Any], Any] | None]] = []
        for mapping in m.fields:
            name = mapping.name_on(target)
            if not name or not mapping.direction.reaches(target):
                continue
            origin = mapping.name_on(source)
            spec = source_entity.field(origin) if origin else None
            goal = target_entity.field(name)
            if spec is not None and _plain(mapping, spec, goal):
                self._fields.append((name, origin, None))  # the value as it is
            else:
                self._fields.append((name, origin, _converter(mapping, source, spec, goal)))
        self._source = source
        fno_entity = source_entity if source is Side.FNO else target_entity
        self._company = next(
            (
                dv if target is Side.DATAVERSE else fno
                for fno, dv in m.key
                if fno == fno_entity.company_field
            ),
            None,
        )
        self._upper = target is Side.DATAVERSE

    def carry(self, row: Mapping[str, Any], changed: set[str] | None = None) -> dict[str, Any]:
        """The target side's values for a source row (only the fields that changed, when
        `changed` names them; defaults fill what has no value)."""
        values: dict[str, Any] = {}
        for name, origin, convert in self._fields:
            if changed is not None and (not origin or origin not in changed):
                continue
            value = row.get(origin) if origin else None
            values[name] = value if convert is None else convert(value)
        company = self._company
        if company is not None and isinstance(values.get(company), str):
            # F&O keeps company codes in lower case; Dataverse shows them as written
            code: str = values[company]
            values[company] = code.upper() if self._upper else code.lower()
        return values


def carry(
    m: DualWriteMap,
    source: Side,
    source_entity: EntityMetadata,
    target_entity: EntityMetadata,
    row: Mapping[str, Any],
    changed: set[str] | None,
) -> dict[str, Any]:
    """One row through a map (see `Carrier`, for many)."""
    return Carrier(m, source, source_entity, target_entity).carry(row, changed)


def key_on(m: DualWriteMap, target: Side, values: Mapping[str, Any]) -> dict[str, Any]:
    """The target row's key from the carried values."""
    names = [dv if target is Side.DATAVERSE else fno for fno, dv in m.key]
    return {n: values[n] for n in names if n in values}


def identity(maps: list[DualWriteMap], side: Side, row: Mapping[str, Any]) -> dict[str, Any]:
    """The maps' key fields of a row on `side`: enough to find its counterpart."""
    names = {fno if side is Side.FNO else dv for m in maps for fno, dv in m.key}
    return {n: row[n] for n in names if n in row}


PLAIN = {FieldType.STRING, FieldType.INT, FieldType.INT64, FieldType.DATE, FieldType.REAL}


def _plain(mapping: FieldMapping, source: EntityField, target: EntityField) -> bool:
    """Whether values cross as they are: same type, nothing to translate or fill in."""
    return (
        not mapping.value_map
        and mapping.default is None
        and not mapping.lookups
        and source.type is target.type
        and source.type in PLAIN
    )


def _converter(
    mapping: FieldMapping, source: Side, source_spec: EntityField | None, target_spec: EntityField
) -> Callable[[Any], Any]:
    """One field's way across, decided once: enums travel by symbol, then the value map,
    the default for no value, and the target's type."""
    enum = source_spec.enum if source_spec is not None else None
    symbols = {m.value: m.symbol for m in enum.members} if enum is not None else None
    translated: dict[Any, Any] | None = None
    if mapping.value_map:
        translated = {}
        for fno_value, dv_value in mapping.value_map:  # the first pair for a value wins
            if source is Side.FNO:
                translated.setdefault(fno_value, dv_value)
            else:
                translated.setdefault(dv_value, fno_value)
    default = mapping.default
    to_target = _to_target_of(target_spec)

    def convert(value: Any) -> Any:
        if symbols is not None and isinstance(value, int):
            value = symbols.get(value, value)
        if translated is not None:
            value = translated.get(value, value)
        if value is None:
            value = default
        return to_target(value)

    return convert


def _to_target_of(spec: EntityField) -> Callable[[Any], Any]:
    if spec.enum is not None:
        numbers = {m.symbol: m.value for m in spec.enum.members}
        return lambda value: None if value is None else numbers.get(str(value), value)
    if spec.type is FieldType.REAL:
        return lambda value: (
            value if value is None or isinstance(value, Decimal) else Decimal(str(value))
        )
    if spec.type is FieldType.STRING:
        return lambda value: value if value is None or isinstance(value, str) else str(value)
    return lambda value: value
