"""Writes the `$metadata` documents the OData peer serves: `fno.xml`, shaped like an
F&O environment's `/data` (the demo store's entities), and `dataverse.xml`, shaped
like Dataverse's Web API (the native tables a linked environment has, and `solutions`).

Run it after changing `datasources/fno_demo/entities.py` or
`datasources/dataverse/tables.py`: `.venv/bin/python -m tests.peers.odata.make_metadata`.
The XML is derived, not hand-written, so the peer and the SQL stores cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from datasources.dataverse.tables import NATIVE_TABLES, row_id, table, text
from datasources.fno_demo.entities import DEMO_ENTITIES
from gateway.kernel.catalog import (
    Cardinality,
    EntityField,
    EntityMetadata,
    EnumType,
    FieldType,
    Relation,
)


@dataclass(frozen=True)
class Shape:
    """How a service names and types what it publishes."""

    namespace: str
    container: str
    left_out: frozenset[str] = frozenset()  # fields the service does not publish
    guid_keys: bool = False  # single-field row ids are Edm.Guid (Dataverse's)


FNO = Shape(
    "Microsoft.Dynamics.DataEntities",
    "Resources",  # what F&O calls its entity container
    frozenset({"RecVersion"}),  # F&O does not publish it; ETags stand in for it
)
DATAVERSE = Shape("Microsoft.Dynamics.CRM", "System", guid_keys=True)
SOLUTION = table(  # what setup looks for: the platform components installed
    "solution",
    "solutions",
    "Solutions",
    row_id("solutionid"),
    text("uniquename", 65, "Name", required=True),
    text("friendlyname", 256, "Display name"),
    text("version", 20, "Version"),
)
FOLDER = Path(__file__).parent

_EDM_TYPES = {
    FieldType.STRING: "Edm.String",
    FieldType.REAL: "Edm.Decimal",
    FieldType.INT: "Edm.Int32",
    FieldType.INT64: "Edm.Int64",
    FieldType.DATE: "Edm.Date",
    FieldType.UTC_DATETIME: "Edm.DateTimeOffset",
}


def _property(parent: ET.Element, field: EntityField, shape: Shape, guid: bool) -> None:
    kind = f"{shape.namespace}.{field.enum.name}" if field.enum else _EDM_TYPES[field.type]
    if guid:
        kind = "Edm.Guid"
    attributes = {"Name": field.name, "Type": kind}
    if not field.nullable or field.is_key:
        attributes["Nullable"] = "false"
    if field.length is not None and not guid:
        attributes["MaxLength"] = str(field.length)
    if field.type is FieldType.REAL:
        attributes["Precision"] = str(field.precision or 32)
        attributes["Scale"] = str(field.scale if field.scale is not None else 6)
    ET.SubElement(parent, "Property", attributes)


def _partner(entity: EntityMetadata, relation: Relation, by_name: dict[str, EntityMetadata]) -> str:
    """The relation on the target that walks back along the same fields, if any."""
    back = tuple((theirs, ours) for ours, theirs in relation.constraints)
    target = by_name[relation.target]
    for other in target.relations:
        if other.target == entity.name and set(other.constraints) == set(back):
            return other.name
    return ""


def _navigation(
    parent: ET.Element,
    entity: EntityMetadata,
    relation: Relation,
    by_name: dict[str, EntityMetadata],
    shape: Shape,
) -> None:
    target = f"{shape.namespace}.{relation.target}"
    many = relation.cardinality is Cardinality.MANY
    attributes = {"Name": relation.name, "Type": f"Collection({target})" if many else target}
    if partner := _partner(entity, relation, by_name):
        attributes["Partner"] = partner
    nav = ET.SubElement(parent, "NavigationProperty", attributes)
    for ours, theirs in relation.constraints:
        ET.SubElement(nav, "ReferentialConstraint", Property=ours, ReferencedProperty=theirs)


def _entity_type(
    schema: ET.Element, entity: EntityMetadata, by_name: dict[str, EntityMetadata], shape: Shape
) -> None:
    node = ET.SubElement(schema, "EntityType", Name=entity.name)
    key = ET.SubElement(node, "Key")
    for field in entity.key:
        ET.SubElement(key, "PropertyRef", Name=field.name)
    guid = shape.guid_keys and len(entity.key) == 1
    for field in entity.fields:
        if field.name not in shape.left_out:
            _property(node, field, shape, guid and field.is_key)
    for relation in entity.relations:
        _navigation(node, entity, relation, by_name, shape)


def _enum_type(schema: ET.Element, enum: EnumType) -> None:
    node = ET.SubElement(schema, "EnumType", Name=enum.name)
    for member in enum.members:
        ET.SubElement(node, "Member", Name=member.symbol, Value=str(member.value))


def _entity_set(
    container: ET.Element, entity: EntityMetadata, by_name: dict[str, EntityMetadata], shape: Shape
) -> None:
    node = ET.SubElement(
        container,
        "EntitySet",
        Name=entity.collection_name,
        EntityType=f"{shape.namespace}.{entity.name}",
    )
    for relation in entity.relations:
        target = by_name[relation.target].collection_name
        ET.SubElement(node, "NavigationPropertyBinding", Path=relation.name, Target=target)
    # Every row carries an ETag; the properties behind it are not disclosed (an empty list).
    concurrency = ET.SubElement(node, "Annotation", Term="Org.OData.Core.V1.OptimisticConcurrency")
    ET.SubElement(concurrency, "Collection")


def metadata_xml(entities: tuple[EntityMetadata, ...], shape: Shape) -> str:
    by_name = {e.name: e for e in entities}
    edmx = ET.Element(
        "edmx:Edmx", {"Version": "4.0", "xmlns:edmx": "http://docs.oasis-open.org/odata/ns/edmx"}
    )
    services = ET.SubElement(edmx, "edmx:DataServices")
    schema = ET.SubElement(
        services,
        "Schema",
        {"Namespace": shape.namespace, "xmlns": "http://docs.oasis-open.org/odata/ns/edm"},
    )
    for entity in entities:
        _entity_type(schema, entity, by_name, shape)
    enums = {f.enum.name: f.enum for e in entities for f in e.fields if f.enum is not None}
    for enum in enums.values():
        _enum_type(schema, enum)
    container = ET.SubElement(schema, "EntityContainer", Name=shape.container)
    for entity in entities:
        _entity_set(container, entity, by_name, shape)
    ET.indent(edmx)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(edmx, "unicode") + "\n"


SERVICES = {
    "fno.xml": (DEMO_ENTITIES, FNO),
    "dataverse.xml": ((*NATIVE_TABLES, SOLUTION), DATAVERSE),
}

if __name__ == "__main__":
    for name, (entities, shape) in SERVICES.items():
        (FOLDER / name).write_text(metadata_xml(entities, shape), encoding="utf-8")
        print(f"wrote {FOLDER / name}")
