"""The inflector: the one place that makes GraphQL names from catalog names.

entity CustomerV3 / collection CustomersV3
  type CustomerV3, connection field customersV3, by-key field customerV3,
  fields customerAccount, dataAreaId, relations salesOrders, customerGroup
"""

from __future__ import annotations

from gateway.kernel.catalog import EntityField, EntityMetadata, EnumType, Relation

ETAG_FIELD = "etag"  # a row's ETag, on entities whose store tags rows (`EntityMetadata.etag`)
IF_MATCH = "ifMatch"  # the mutations' argument that passes one back


def lower_first(name: str) -> str:
    """`CustomerAccount` → `customerAccount`; `dataAreaId` stays; `URLPath` → `urlPath`."""
    head = 0
    while head < len(name) and name[head].isupper():
        head += 1
    if head <= 1 or head == len(name):
        return name[:1].lower() + name[1:] if head < len(name) else name.lower()
    return name[: head - 1].lower() + name[head - 1 :]


def upper_first(name: str) -> str:
    """`account` → `Account` (for `createAccount`); `CustomerV3` stays."""
    return name[:1].upper() + name[1:]


class Inflector:
    def object_type(self, entity: EntityMetadata) -> str:
        return entity.name

    def connection_type(self, entity: EntityMetadata) -> str:
        return f"{entity.name}Connection"

    def edge_type(self, entity: EntityMetadata) -> str:
        return f"{entity.name}Edge"

    def filter_type(self, entity: EntityMetadata) -> str:
        return f"{entity.name}Filter"

    def many_filter_type(self, entity: EntityMetadata) -> str:
        return f"{entity.name}ManyFilter"

    def order_type(self, entity: EntityMetadata) -> str:
        return f"{entity.name}OrderBy"

    def order_field_enum(self, entity: EntityMetadata) -> str:
        return f"{entity.name}OrderField"

    def connection_field(self, entity: EntityMetadata) -> str:
        return lower_first(entity.collection_name)

    def by_key_field(self, entity: EntityMetadata) -> str:
        return lower_first(entity.name)

    def create_mutation(self, entity: EntityMetadata) -> str:
        return f"create{upper_first(entity.name)}"

    def update_mutation(self, entity: EntityMetadata) -> str:
        return f"update{upper_first(entity.name)}"

    def delete_mutation(self, entity: EntityMetadata) -> str:
        return f"delete{upper_first(entity.name)}"

    def create_input(self, entity: EntityMetadata) -> str:
        return f"{entity.name}CreateInput"

    def update_input(self, entity: EntityMetadata) -> str:
        return f"{entity.name}UpdateInput"

    def field(self, field: EntityField) -> str:
        return lower_first(field.name)

    def relation(self, relation: Relation) -> str:
        return lower_first(relation.name)

    def enum_type(self, enum: EnumType) -> str:
        return enum.name

    def enum_filter_type(self, enum: EnumType) -> str:
        return f"{enum.name}Filter"

    def order_value(self, field: EntityField) -> str:
        return field.name
