"""SQLAlchemy tables for entities, derived from their metadata (no class per entity)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    TypeDecorator,
    text,
)
from sqlalchemy.types import TypeEngine

from gateway.kernel.catalog import EntityField, EntityMetadata, FieldType
from gateway.kernel.change import VERSION_FIELDS


class UtcDateTime(TypeDecorator[dt.datetime]):
    """F&O's UtcDateTime: stored as UTC without a zone, always read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        stamp: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp


def column_type(field: EntityField, dialect_name: str | None = None) -> TypeEngine[Any]:
    """The column type for a field; on PostgreSQL strings compare bytewise, as on SQLite."""
    kind = field.type
    if kind is FieldType.STRING:
        collation = "C" if dialect_name == "postgresql" else None
        return String(field.length, collation=collation)
    if kind in (FieldType.INT, FieldType.ENUM):
        return Integer()
    if kind is FieldType.INT64:
        return BigInteger()
    if kind is FieldType.REAL:
        return Numeric(field.precision or 32, field.scale if field.scale is not None else 6)
    if kind is FieldType.DATE:
        return Date()
    if kind is FieldType.UTC_DATETIME:
        return UtcDateTime()
    raise ValueError(f"no column type for {kind}")


def entity_table(
    entity: EntityMetadata, metadata: MetaData | None = None, dialect_name: str | None = None
) -> Table:
    """The table behind an entity, keyed as its metadata says."""
    return Table(
        entity.table,
        metadata if metadata is not None else MetaData(),
        *(
            Column(
                f.column,
                column_type(f, dialect_name),
                primary_key=f.is_key,
                nullable=f.nullable and not f.is_key,
                # a row another client inserts starts at version 1, as F&O's kernel sets it
                server_default=text("1") if f.name in VERSION_FIELDS else None,
            )
            for f in entity.fields
        ),
    )
