"""The metadata an F&O store publishes about its data entities, kept in the store itself.

Five tables, in the spirit of F&O's own system tables: `dataarea` (legal entities),
`sysdataentity`, `sysdataentityfield`, `sysdataentityrelation` and `sysenumvalue`.
An entity is published by writing its rows; the gateway reads them back into
`EntityMetadata`. Nothing about an entity lives in gateway code.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

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

system_metadata = MetaData()

dataarea = Table(
    "dataarea",
    system_metadata,
    Column("id", String(4), primary_key=True),
    Column("name", String(60), nullable=False),
)

sysdataentity = Table(
    "sysdataentity",
    system_metadata,
    Column("name", String(81), primary_key=True),
    Column("collection_name", String(81), nullable=False, unique=True),
    Column("label", String(200), nullable=False, default=""),
    Column("table_name", String(81), nullable=False),
    Column("company_field", String(81)),
    Column("operations", String(60), nullable=False, default="read"),
    Column("auto_create", Boolean, nullable=False, default=False),
    Column("is_public", Boolean, nullable=False, default=True),
)

sysdataentityfield = Table(
    "sysdataentityfield",
    system_metadata,
    Column("entity", String(81), primary_key=True),
    Column("name", String(81), primary_key=True),
    Column("ordinal", Integer, nullable=False),
    Column("type", String(20), nullable=False),
    Column("column_name", String(81), nullable=False),
    Column("label", String(200), nullable=False, default=""),
    Column("nullable", Boolean, nullable=False, default=True),
    Column("is_key", Boolean, nullable=False, default=False),
    Column("read_only", Boolean, nullable=False, default=False),
    Column("length", Integer),
    Column("precision", Integer),
    Column("scale", Integer),
    Column("enum_name", String(81)),
)

sysdataentityrelation = Table(
    "sysdataentityrelation",
    system_metadata,
    Column("entity", String(81), primary_key=True),
    Column("name", String(81), primary_key=True),
    Column("target", String(81), nullable=False),
    Column("cardinality", String(4), nullable=False),
    Column("source_fields", String(400), nullable=False),
    Column("target_fields", String(400), nullable=False),
    Column("label", String(200), nullable=False, default=""),
)

sysenumvalue = Table(
    "sysenumvalue",
    system_metadata,
    Column("enum_name", String(81), primary_key=True),
    Column("symbol", String(81), primary_key=True),
    Column("value", Integer, nullable=False),
    Column("label", String(200), nullable=False, default=""),
)


async def create_system_tables(conn: AsyncConnection) -> None:
    await conn.run_sync(system_metadata.create_all)


async def publish_entity(conn: AsyncConnection, entity: EntityMetadata) -> None:
    """Write (or rewrite) an entity's metadata rows, as an F&O deployment would."""
    for table in (sysdataentityfield, sysdataentityrelation):
        await conn.execute(delete(table).where(table.c.entity == entity.name))
    await conn.execute(delete(sysdataentity).where(sysdataentity.c.name == entity.name))
    await conn.execute(
        insert(sysdataentity).values(
            name=entity.name,
            collection_name=entity.collection_name,
            label=entity.label,
            table_name=entity.table,
            company_field=entity.company_field,
            operations=",".join(sorted(entity.operations)),
            auto_create=entity.auto_create,
            is_public=True,
        )
    )
    await conn.execute(
        insert(sysdataentityfield),
        [
            {
                "entity": entity.name,
                "name": f.name,
                "ordinal": i,
                "type": f.type.value,
                "column_name": f.column,
                "label": f.label,
                "nullable": f.nullable,
                "is_key": f.is_key,
                "read_only": f.read_only,
                "length": f.length,
                "precision": f.precision,
                "scale": f.scale,
                "enum_name": f.enum.name if f.enum else None,
            }
            for i, f in enumerate(entity.fields)
        ],
    )
    if entity.relations:
        await conn.execute(
            insert(sysdataentityrelation),
            [
                {
                    "entity": entity.name,
                    "name": r.name,
                    "target": r.target,
                    "cardinality": r.cardinality.value,
                    "source_fields": ",".join(a for a, _ in r.constraints),
                    "target_fields": ",".join(b for _, b in r.constraints),
                    "label": r.label,
                }
                for r in entity.relations
            ],
        )
    for enum in {f.enum.name: f.enum for f in entity.fields if f.enum}.values():
        await conn.execute(delete(sysenumvalue).where(sysenumvalue.c.enum_name == enum.name))
        await conn.execute(
            insert(sysenumvalue),
            [
                {"enum_name": enum.name, "symbol": m.symbol, "value": m.value, "label": m.label}
                for m in enum.members
            ],
        )


async def read_entities(conn: AsyncConnection) -> list[EntityMetadata]:
    """Every public entity, in four statements whatever their number."""
    enums: dict[str, list[EnumMember]] = defaultdict(list)
    for row in await conn.execute(
        select(sysenumvalue).order_by(sysenumvalue.c.enum_name, sysenumvalue.c.value)
    ):
        enums[row.enum_name].append(EnumMember(row.symbol, row.value, row.label))

    fields: dict[str, list[EntityField]] = defaultdict(list)
    for row in await conn.execute(
        select(sysdataentityfield).order_by(
            sysdataentityfield.c.entity, sysdataentityfield.c.ordinal
        )
    ):
        fields[row.entity].append(
            EntityField(
                name=row.name,
                type=FieldType(row.type),
                column=row.column_name,
                label=row.label,
                nullable=row.nullable,
                is_key=row.is_key,
                read_only=row.read_only,
                length=row.length,
                precision=row.precision,
                scale=row.scale,
                enum=EnumType(row.enum_name, tuple(enums[row.enum_name]))
                if row.enum_name
                else None,
            )
        )

    relations: dict[str, list[Relation]] = defaultdict(list)
    for row in await conn.execute(
        select(sysdataentityrelation).order_by(
            sysdataentityrelation.c.entity, sysdataentityrelation.c.name
        )
    ):
        relations[row.entity].append(
            Relation(
                name=row.name,
                target=row.target,
                cardinality=Cardinality(row.cardinality),
                constraints=tuple(
                    zip(row.source_fields.split(","), row.target_fields.split(","), strict=True)
                ),
                label=row.label,
            )
        )

    entities = []
    for row in await conn.execute(
        select(sysdataentity).where(sysdataentity.c.is_public).order_by(sysdataentity.c.name)
    ):
        entities.append(
            EntityMetadata(
                name=row.name,
                collection_name=row.collection_name,
                label=row.label,
                table=row.table_name,
                fields=tuple(fields[row.name]),
                relations=tuple(relations[row.name]),
                company_field=row.company_field,
                operations=frozenset(Operation(o) for o in row.operations.split(",") if o),
                auto_create=row.auto_create,
            )
        )
    return entities
