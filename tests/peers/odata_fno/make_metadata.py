"""Writes metadata.xml, the F&O-shaped `$metadata` of the demo store's entities.

Run it after changing `datasources/fno_demo/entities.py`:
`.venv/bin/python -m tests.peers.odata_fno.make_metadata`. The XML is derived, not
hand-written, so the OData peer and the SQL demo store cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from datasources.fno_demo.entities import DEMO_ENTITIES
from gateway.kernel.catalog import (
    Cardinality,
    EntityField,
    EntityMetadata,
    EnumType,
    FieldType,
    Relation,
)

NAMESPACE = "Microsoft.Dynamics.DataEntities"
CONTAINER = "Resources"  # what F&O calls its entity container
LEFT_OUT = frozenset({"RecVersion"})  # F&O does not publish it; ETags stand in for it
PATH = Path(__file__).with_name("metadata.xml")

_EDM_TYPES = {
    FieldType.STRING: "Edm.String",
    FieldType.REAL: "Edm.Decimal",
    FieldType.INT: "Edm.Int32",
    FieldType.INT64: "Edm.Int64",
    FieldType.DATE: "Edm.Date",
    FieldType.UTC_DATETIME: "Edm.DateTimeOffset",
}


def _property(parent: ET.Element, field: EntityField) -> None:
    kind = f"{NAMESPACE}.{field.enum.name}" if field.enum else _EDM_TYPES[field.type]
    attributes = {"Name": field.name, "Type": kind}
    if not field.nullable or field.is_key:
        attributes["Nullable"] = "false"
    if field.length is not None:
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
) -> None:
    target = f"{NAMESPACE}.{relation.target}"
    many = relation.cardinality is Cardinality.MANY
    attributes = {"Name": relation.name, "Type": f"Collection({target})" if many else target}
    if partner := _partner(entity, relation, by_name):
        attributes["Partner"] = partner
    nav = ET.SubElement(parent, "NavigationProperty", attributes)
    for ours, theirs in relation.constraints:
        ET.SubElement(nav, "ReferentialConstraint", Property=ours, ReferencedProperty=theirs)


def _entity_type(
    schema: ET.Element, entity: EntityMetadata, by_name: dict[str, EntityMetadata]
) -> None:
    node = ET.SubElement(schema, "EntityType", Name=entity.name)
    key = ET.SubElement(node, "Key")
    for field in entity.key:
        ET.SubElement(key, "PropertyRef", Name=field.name)
    for field in entity.fields:
        if field.name not in LEFT_OUT:
            _property(node, field)
    for relation in entity.relations:
        _navigation(node, entity, relation, by_name)


def _enum_type(schema: ET.Element, enum: EnumType) -> None:
    node = ET.SubElement(schema, "EnumType", Name=enum.name)
    for member in enum.members:
        ET.SubElement(node, "Member", Name=member.symbol, Value=str(member.value))


def _entity_set(
    container: ET.Element, entity: EntityMetadata, by_name: dict[str, EntityMetadata]
) -> None:
    node = ET.SubElement(
        container, "EntitySet", Name=entity.collection_name, EntityType=f"{NAMESPACE}.{entity.name}"
    )
    for relation in entity.relations:
        target = by_name[relation.target].collection_name
        ET.SubElement(node, "NavigationPropertyBinding", Path=relation.name, Target=target)
    # Every row carries an ETag; the properties behind it are not disclosed (an empty list).
    concurrency = ET.SubElement(node, "Annotation", Term="Org.OData.Core.V1.OptimisticConcurrency")
    ET.SubElement(concurrency, "Collection")


def metadata_xml(entities: tuple[EntityMetadata, ...] = DEMO_ENTITIES) -> str:
    by_name = {e.name: e for e in entities}
    edmx = ET.Element(
        "edmx:Edmx", {"Version": "4.0", "xmlns:edmx": "http://docs.oasis-open.org/odata/ns/edmx"}
    )
    services = ET.SubElement(edmx, "edmx:DataServices")
    schema = ET.SubElement(
        services,
        "Schema",
        {"Namespace": NAMESPACE, "xmlns": "http://docs.oasis-open.org/odata/ns/edm"},
    )
    for entity in entities:
        _entity_type(schema, entity, by_name)
    enums = {f.enum.name: f.enum for e in entities for f in e.fields if f.enum is not None}
    for enum in enums.values():
        _enum_type(schema, enum)
    container = ET.SubElement(schema, "EntityContainer", Name=CONTAINER)
    for entity in entities:
        _entity_set(container, entity, by_name)
    ET.indent(edmx)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(edmx, "unicode") + "\n"


if __name__ == "__main__":
    PATH.write_text(metadata_xml(), encoding="utf-8")
    print(f"wrote {PATH}")
