"""`$metadata` (CSDL XML) as entity metadata: what an OData service publishes becomes
the same `EntityMetadata` a SQL store's catalog tables give.

Entities are keyed on the entity sets of the container (F&O: type `CustomerV3` in set
`CustomersV3`); properties of a type the gateway does not expose (binary, streams,
complex and collection values) are left out, as F&O's AnyType fields are.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from gateway.kernel.catalog import (
    Cardinality,
    EntityField,
    EntityMetadata,
    EnumMember,
    EnumType,
    FieldType,
    Operation,
    Relation,
)
from gateway.kernel.errors import UpstreamFailed

_EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
COMPANY_FIELD = "dataAreaId"
_TYPES = {
    "Edm.String": FieldType.STRING,
    "Edm.Guid": FieldType.STRING,
    "Edm.Byte": FieldType.INT,
    "Edm.SByte": FieldType.INT,
    "Edm.Int16": FieldType.INT,
    "Edm.Int32": FieldType.INT,
    "Edm.Int64": FieldType.INT64,
    "Edm.Decimal": FieldType.REAL,
    "Edm.Double": FieldType.REAL,
    "Edm.Single": FieldType.REAL,
    "Edm.Date": FieldType.DATE,
    "Edm.DateTimeOffset": FieldType.UTC_DATETIME,
}
_COMPUTED = {"Org.OData.Core.V1.Computed", "Core.Computed"}
_ALL = frozenset(Operation)


@dataclass(frozen=True)
class Service:
    """What the gateway needs of a service's metadata: the entities, and for each the
    qualified name of its enums (F&O filters compare enums only with qualified literals)."""

    entities: tuple[EntityMetadata, ...]
    enum_names: dict[str, str]  # enum name → qualified name (Ns.Name)
    guids: frozenset[tuple[str, str]] = frozenset()  # (entity, field): literals unquoted

    def entity(self, name: str) -> EntityMetadata:
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise KeyError(name)


def read_metadata(document: bytes) -> Service:
    """Parse a `$metadata` document; UPSTREAM_FAILED if it is not CSDL XML."""
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        raise UpstreamFailed(f"the service's $metadata is not XML: {exc}") from exc
    if root.tag != f"{_EDMX}Edmx":
        raise UpstreamFailed("the service's $metadata is not a CSDL XML (EDMX) document")
    schemas = list(root.iter(f"{_EDM}Schema"))
    aliases = {s.get("Alias", ""): s.get("Namespace", "") for s in schemas if s.get("Alias")}
    enums: dict[str, EnumType] = {}
    qualified: dict[str, str] = {}
    types: dict[str, Element] = {}
    for schema in schemas:
        namespace = schema.get("Namespace", "")
        for element in schema.findall(f"{_EDM}EnumType"):
            enum = _enum(element)
            enums[f"{namespace}.{enum.name}"] = enum
            qualified[enum.name] = f"{namespace}.{enum.name}"
        for element in schema.findall(f"{_EDM}EntityType"):
            types[f"{namespace}.{element.get('Name')}"] = element
    sets: dict[str, str] = {}  # qualified type → entity set
    tagged: set[str] = set()  # entity sets whose rows carry ETags
    for container in root.iter(f"{_EDM}EntityContainer"):
        for entity_set in container.findall(f"{_EDM}EntitySet"):
            sets[_unalias(entity_set.get("EntityType", ""), aliases)] = entity_set.get("Name", "")
            terms = (a.get("Term", "") for a in entity_set.findall(f"{_EDM}Annotation"))
            if any(t.endswith(".OptimisticConcurrency") for t in terms):
                tagged.add(entity_set.get("Name", ""))
    entities = []
    guids: set[tuple[str, str]] = set()
    for type_name, collection in sets.items():
        found = types.get(type_name)
        if found is None:
            continue
        element = found
        entities.append(
            _entity(element, collection, types, enums, aliases, set(sets), collection in tagged)
        )
        guids.update(
            (element.get("Name", ""), p.get("Name", ""))
            for p in element.findall(f"{_EDM}Property")
            if _unalias(p.get("Type", ""), aliases) == "Edm.Guid"
        )
    return Service(tuple(entities), qualified, frozenset(guids))


def _entity(
    element: Element,
    collection: str,
    types: dict[str, Element],
    enums: dict[str, EnumType],
    aliases: dict[str, str],
    published: set[str],
    etag: bool,
) -> EntityMetadata:
    name = element.get("Name", "")
    keys = {ref.get("Name") for ref in element.iterfind(f"{_EDM}Key/{_EDM}PropertyRef")}
    fields = [
        field
        for prop in element.findall(f"{_EDM}Property")
        if (field := _field(prop, prop.get("Name") in keys, enums, aliases)) is not None
    ]
    names = {f.name for f in fields}
    relations = [
        relation
        for nav in element.findall(f"{_EDM}NavigationProperty")
        if (relation := _relation(nav, types, aliases, published)) is not None
    ]
    return EntityMetadata(
        name=name,
        collection_name=collection,
        label=collection,
        table=collection,
        fields=tuple(fields),
        relations=tuple(relations),
        company_field=COMPANY_FIELD if COMPANY_FIELD in names else None,
        operations=_ALL,
        etag=etag,
    )


def _field(
    prop: Element, is_key: bool, enums: dict[str, EnumType], aliases: dict[str, str]
) -> EntityField | None:
    name, declared = prop.get("Name", ""), _unalias(prop.get("Type", ""), aliases)
    enum = enums.get(declared)
    kind = FieldType.ENUM if enum is not None else _TYPES.get(declared)
    if kind is None:
        return None
    length = prop.get("MaxLength")
    computed = any(a.get("Term") in _COMPUTED for a in prop.findall(f"{_EDM}Annotation"))
    return EntityField(
        name,
        kind,
        name,
        name,
        nullable=not is_key and prop.get("Nullable", "true") == "true",
        is_key=is_key,
        read_only=computed,
        length=int(length) if length and length.isdigit() else (36 if "Guid" in declared else None),
        precision=_int(prop.get("Precision")),
        scale=_int(prop.get("Scale")),
        enum=enum,
    )


def _relation(
    nav: Element,
    types: dict[str, Element],
    aliases: dict[str, str],
    published: set[str],
) -> Relation | None:
    """A navigation property with its referential constraint (or its partner's, reversed);
    one without either cannot be looked up by key, so it is left out."""
    declared = _unalias(nav.get("Type", ""), aliases)
    many = declared.startswith("Collection(")
    target_type = declared.removeprefix("Collection(").removesuffix(")")
    if target_type not in published or target_type not in types:
        return None
    pairs = [
        (c.get("Property", ""), c.get("ReferencedProperty", ""))
        for c in nav.findall(f"{_EDM}ReferentialConstraint")
    ]
    if not pairs and nav.get("Partner"):
        partner = types[target_type].find(f"{_EDM}NavigationProperty[@Name='{nav.get('Partner')}']")
        if partner is not None:
            pairs = [
                (c.get("ReferencedProperty", ""), c.get("Property", ""))
                for c in partner.findall(f"{_EDM}ReferentialConstraint")
            ]
    if not pairs:
        return None
    cardinality = Cardinality.MANY if many else Cardinality.ONE
    target = target_type.rsplit(".", 1)[-1]
    return Relation(nav.get("Name", ""), target, cardinality, tuple(pairs), nav.get("Name", ""))


def _enum(element: Element) -> EnumType:
    members: list[EnumMember] = []
    for i, member in enumerate(element.findall(f"{_EDM}Member")):
        value = _int(member.get("Value"))
        symbol = member.get("Name", "")
        members.append(EnumMember(symbol, i if value is None else value, symbol))
    return EnumType(element.get("Name", ""), tuple(members))


def _unalias(name: str, aliases: dict[str, str]) -> str:
    inner = name.removeprefix("Collection(").removesuffix(")")
    prefix, _, rest = inner.rpartition(".")
    if prefix in aliases:
        inner = f"{aliases[prefix]}.{rest}"
    return f"Collection({inner})" if name.startswith("Collection(") else inner


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None
