"""Entity metadata as an F&O store publishes it, and the resolved catalog built from it.

The raw metadata (`EntityMetadata`) is what a datasource reads. `resolve_catalog`
turns the visible subset into a `ResolvedCatalog`: validated, immutable, with
relations to entities that are not visible dropped (as Dataverse does: a relation is
created only once its target exists). The schema is built from the resolved catalog
alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from gateway.kernel.errors import CatalogError


class FieldType(StrEnum):
    """F&O base types the gateway exposes (AnyType, container, BLOB... are left out)."""

    STRING = "String"
    INT = "Int"
    INT64 = "Int64"
    REAL = "Real"
    DATE = "Date"
    UTC_DATETIME = "UtcDateTime"
    ENUM = "Enum"


class Cardinality(StrEnum):
    ONE = "one"
    MANY = "many"


class Operation(StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class EnumMember:
    symbol: str
    value: int
    label: str = ""


@dataclass(frozen=True, slots=True)
class EnumType:
    """An F&O enum. Values are matched by symbol; the integers are the store's own."""

    name: str
    members: tuple[EnumMember, ...]

    def symbol_of(self, value: int) -> str:
        for member in self.members:
            if member.value == value:
                return member.symbol
        raise CatalogError(f"enum {self.name} has no member with value {value}")


@dataclass(frozen=True, slots=True)
class EntityField:
    name: str
    type: FieldType
    column: str
    label: str = ""
    nullable: bool = True
    is_key: bool = False
    read_only: bool = False
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    enum: EnumType | None = None


@dataclass(frozen=True, slots=True)
class Relation:
    """A navigation from one entity to another by equal key fields."""

    name: str
    target: str
    cardinality: Cardinality
    constraints: tuple[tuple[str, str], ...]  # (field on this entity, field on the target)
    label: str = ""


@dataclass(frozen=True)
class EntityMetadata:
    """One published data entity: `CustomerV3` in the collection `CustomersV3`."""

    name: str
    collection_name: str
    label: str
    table: str
    fields: tuple[EntityField, ...]
    relations: tuple[Relation, ...] = ()
    company_field: str | None = None
    operations: frozenset[Operation] = frozenset({Operation.READ})
    auto_create: bool = False
    etag: bool = False  # rows carry the store's ETags (OData): writers may pass one back
    _by_name: Mapping[str, EntityField] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    @property
    def company_scoped(self) -> bool:
        return self.company_field is not None

    @cached_property
    def key(self) -> tuple[EntityField, ...]:
        return tuple(f for f in self.fields if f.is_key)

    @cached_property
    def mandatory(self) -> tuple[EntityField, ...]:
        """The fields a new row must be given: not nullable, and not read-only."""
        return tuple(f for f in self.fields if not f.nullable and not f.read_only)

    def field(self, name: str) -> EntityField:
        try:
            return self._by_name[name]
        except KeyError:
            raise CatalogError(f"entity {self.name} has no field {name}") from None

    def has_field(self, name: str) -> bool:
        return name in self._by_name

    def relation(self, name: str) -> Relation:
        for relation in self.relations:
            if relation.name == name:
                return relation
        raise CatalogError(f"entity {self.name} has no relation {name}")

    def fingerprint(self) -> str:
        """A hash of the definition: a changed fingerprint means a refresh is needed."""
        canonical = json.dumps(entity_to_dict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ResolvedCatalog:
    """The visible entities, checked and cross-linked; what the schema is built from."""

    entities: Mapping[str, EntityMetadata]
    version: str

    def entity(self, name: str) -> EntityMetadata:
        try:
            return self.entities[name]
        except KeyError:
            raise CatalogError(f"entity {name} is not in the catalog") from None


def resolve_catalog(entities: Iterable[EntityMetadata]) -> ResolvedCatalog:
    """Validate the visible entities and drop relations whose target is not visible."""
    by_name: dict[str, EntityMetadata] = {}
    collections: dict[str, str] = {}
    for entity in entities:
        if entity.name in by_name:
            raise CatalogError(f"entity {entity.name} is published twice")
        if entity.collection_name in collections:
            raise CatalogError(
                f"entities {collections[entity.collection_name]} and {entity.name} "
                f"share the collection name {entity.collection_name}"
            )
        if not entity.key:
            raise CatalogError(f"entity {entity.name} has no key fields")
        if entity.company_field is not None and not entity.has_field(entity.company_field):
            raise CatalogError(f"entity {entity.name} names a missing company field")
        by_name[entity.name] = entity
        collections[entity.collection_name] = entity.name

    resolved: dict[str, EntityMetadata] = {}
    for entity in by_name.values():
        relations = []
        for relation in entity.relations:
            target = by_name.get(relation.target)
            if target is None:
                continue
            for source_field, target_field in relation.constraints:
                entity.field(source_field)
                target.field(target_field)
            relations.append(relation)
        resolved[entity.name] = _replace_relations(entity, tuple(relations))
    digest = hashlib.sha256()
    for name in sorted(resolved):
        digest.update(f"{name}:{resolved[name].fingerprint()};".encode())
    return ResolvedCatalog(entities=resolved, version=digest.hexdigest()[:12])


def _replace_relations(entity: EntityMetadata, relations: tuple[Relation, ...]) -> EntityMetadata:
    return EntityMetadata(
        name=entity.name,
        collection_name=entity.collection_name,
        label=entity.label,
        table=entity.table,
        fields=entity.fields,
        relations=relations,
        company_field=entity.company_field,
        operations=entity.operations,
        auto_create=entity.auto_create,
        etag=entity.etag,
    )


def entity_to_dict(entity: EntityMetadata) -> dict[str, Any]:
    """A JSON-ready form, used for the catalog snapshot in the control store."""
    return {
        "name": entity.name,
        "collection_name": entity.collection_name,
        "label": entity.label,
        "table": entity.table,
        "company_field": entity.company_field,
        "operations": sorted(entity.operations),
        "auto_create": entity.auto_create,
        "etag": entity.etag,
        "fields": [
            {
                "name": f.name,
                "type": f.type.value,
                "column": f.column,
                "label": f.label,
                "nullable": f.nullable,
                "is_key": f.is_key,
                "read_only": f.read_only,
                "length": f.length,
                "precision": f.precision,
                "scale": f.scale,
                "enum": None
                if f.enum is None
                else {
                    "name": f.enum.name,
                    "members": [[m.symbol, m.value, m.label] for m in f.enum.members],
                },
            }
            for f in entity.fields
        ],
        "relations": [
            {
                "name": r.name,
                "target": r.target,
                "cardinality": r.cardinality.value,
                "constraints": [list(pair) for pair in r.constraints],
                "label": r.label,
            }
            for r in entity.relations
        ],
    }


def entity_from_dict(data: Mapping[str, Any]) -> EntityMetadata:
    fields = []
    for f in data["fields"]:
        enum = f.get("enum")
        fields.append(
            EntityField(
                name=f["name"],
                type=FieldType(f["type"]),
                column=f["column"],
                label=f.get("label", ""),
                nullable=f.get("nullable", True),
                is_key=f.get("is_key", False),
                read_only=f.get("read_only", False),
                length=f.get("length"),
                precision=f.get("precision"),
                scale=f.get("scale"),
                enum=None
                if enum is None
                else EnumType(
                    name=enum["name"],
                    members=tuple(EnumMember(s, int(v), lbl) for s, v, lbl in enum["members"]),
                ),
            )
        )
    return EntityMetadata(
        name=data["name"],
        collection_name=data["collection_name"],
        label=data.get("label", ""),
        table=data["table"],
        fields=tuple(fields),
        relations=tuple(
            Relation(
                name=r["name"],
                target=r["target"],
                cardinality=Cardinality(r["cardinality"]),
                constraints=tuple((a, b) for a, b in r["constraints"]),
                label=r.get("label", ""),
            )
            for r in data.get("relations", [])
        ),
        company_field=data.get("company_field"),
        operations=frozenset(Operation(o) for o in data.get("operations", ["read"])),
        auto_create=data.get("auto_create", False),
        etag=data.get("etag", False),
    )
