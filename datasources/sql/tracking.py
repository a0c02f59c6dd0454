"""Change tracking: what clients other than the gateway write into a store.

Triggers on each tracked table append every inserted, updated or deleted row's key
(and, for updates and deletes, the row as it was) to the store's change log, inside
the writer's own transaction: a change is logged if and only if it committed.

The gateway's own writes carry a mark the triggers see, and are not logged: what
sync applies to a store never comes back from it as a change to sync. On PostgreSQL
the mark is a setting of each of the gateway's sessions, made when it connects (no
cost per write); SQLite has no such settings, so there it is a row in a table that
exists only inside the gateway's write transaction (inserted first, deleted before
commit, so no other connection ever sees it).

PostgreSQL triggers are per statement over transition tables: a bulk write (a COPY
of a million rows) costs one trigger call, not one per row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.catalog import EntityField, EntityMetadata, FieldType
from gateway.kernel.change import ChangeKind, TrackedChange
from gateway.kernel.json import loads

SETTING = "fno_gateway.writer"
_metadata = MetaData()
change_log = Table(
    "fno_change_log",
    _metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("table_name", String(128), nullable=False),
    Column("op", String(1), nullable=False),  # I, U or D
    Column("key", Text, nullable=False),  # the row's key columns, as JSON
    Column("before", Text),  # the row as it was (updates and deletes), as JSON
    Column("at", DateTime, nullable=False, server_default=func.current_timestamp()),
)
writer = Table("fno_gateway_writer", _metadata, Column("mark", Integer))  # SQLite only


KINDS = {"I": ChangeKind.CREATE, "U": ChangeKind.UPDATE, "D": ChangeKind.DELETE}


async def is_tracking(conn: AsyncConnection) -> bool:
    """Whether the store has a change log (its writes must then be marked)."""

    def has(sync: Any) -> bool:
        from sqlalchemy import inspect

        return bool(inspect(sync).has_table(change_log.name))

    return await conn.run_sync(has)


def mark_session(dbapi_connection: Any, record: Any, _proxy: Any = None) -> None:
    """PostgreSQL: mark a session as the gateway's, once (an engine's checkout hook:
    sessions opened before the hook was set are marked too)."""
    if record.info.get(SETTING):
        return
    record.info[SETTING] = True
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET {SETTING} = 'on'")
    cursor.close()
    dbapi_connection.commit()  # the driver opened a transaction: a rollback would undo it


async def mark(conn: AsyncConnection) -> None:
    """SQLite: mark the open transaction as the gateway's."""
    if conn.dialect.name != "postgresql":
        await conn.exec_driver_sql(f'INSERT INTO "{writer.name}" (mark) VALUES (1)')  # noqa: S608


async def unmark(conn: AsyncConnection) -> None:
    """Before commit: the SQLite mark must never be seen outside the transaction."""
    if conn.dialect.name != "postgresql":
        await conn.exec_driver_sql(f'DELETE FROM "{writer.name}"')  # noqa: S608


def is_busy(exc: DBAPIError) -> bool:
    """Whether a statement failed because another writer holds what it needed."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code == "55P03" or "database is locked" in str(exc.orig)


async def install(conn: AsyncConnection, entity: EntityMetadata) -> None:
    """Track the entity's table (again: it is safe to repeat)."""
    await conn.run_sync(_metadata.create_all)
    for statement in _statements(conn.dialect.name, entity):
        await conn.exec_driver_sql(statement)


async def read(
    conn: AsyncConnection, entities: Sequence[EntityMetadata], limit: int
) -> tuple[list[TrackedChange], list[int]]:
    """The oldest logged changes: those of these entities, and the ids of the rest
    (tables nobody tracks any more), to be forgotten."""
    by_table = {e.table: e for e in entities}
    rows = await conn.execute(select(change_log).order_by(change_log.c.id).limit(limit))
    changes: list[TrackedChange] = []
    others: list[int] = []
    for row in rows:
        entity = by_table.get(row.table_name)
        if entity is None:
            others.append(row.id)
            continue
        before = loads(row.before) if row.before else None
        changes.append(
            TrackedChange(
                row.id,
                entity,
                KINDS[row.op],
                _by_field(entity, loads(row.key)),
                _by_field(entity, before) if before is not None else None,
            )
        )
    return changes, others


async def forget(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Drop handled changes from the log."""
    for start in range(0, len(ids), 1000):
        await conn.execute(delete(change_log).where(change_log.c.id.in_(ids[start : start + 1000])))


def _by_field(entity: EntityMetadata, by_column: dict[str, Any]) -> dict[str, Any]:
    """A logged row (JSON) by field name, each value of its field's type, as a read
    would give it."""
    return {f.name: _typed(f, by_column[f.column]) for f in entity.fields if f.column in by_column}


def _typed(field: EntityField, value: Any) -> Any:
    kind = field.type
    if value is None:
        return None
    if kind is FieldType.REAL:  # SQLite keeps 1500.00 as 1500
        number = Decimal(str(value))
        return number if field.scale is None else number.quantize(Decimal(1).scaleb(-field.scale))
    if kind in (FieldType.INT, FieldType.INT64, FieldType.ENUM):
        return int(value)
    if kind is FieldType.DATE and isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    if kind is FieldType.UTC_DATETIME and isinstance(value, str):
        stamp = dt.datetime.fromisoformat(value.replace(" ", "T"))
        return stamp.astimezone(dt.UTC).replace(tzinfo=None) if stamp.tzinfo else stamp
    return value


def _statements(dialect: str, entity: EntityMetadata) -> Iterator[str]:
    table = entity.table
    keys = [f.column for f in entity.key]
    columns = [f.column for f in entity.fields]
    name = _ident(f"fno_track_{table}")
    log = change_log.name
    if dialect == "postgresql":
        key_json = "json_build_object(" + ", ".join(f"'{c}', n.{_ident(c)}" for c in keys) + ")"
        old_key = key_json.replace("n.", "o.")
        same = " AND ".join(f"o.{_ident(c)} IS NOT DISTINCT FROM n.{_ident(c)}" for c in keys)
        insert = f"INSERT INTO {log} (table_name, op, key, before)"
        # names come from metadata and pass _ident
        yield f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('{SETTING}', true) = 'on' THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    {insert} SELECT '{table}', 'I', {key_json}, NULL FROM new_rows n;
  ELSIF TG_OP = 'UPDATE' THEN
    {insert} SELECT '{table}', 'D', {old_key}, to_json(o) FROM old_rows o
      WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE {same});
    {insert} SELECT '{table}', 'U', {key_json}, to_json(o)
      FROM new_rows n LEFT JOIN old_rows o ON {same};
  ELSE
    {insert} SELECT '{table}', 'D', {old_key}, to_json(o) FROM old_rows o;
  END IF;
  RETURN NULL;
END $$"""  # noqa: S608
        transitions = {
            "INSERT": "NEW TABLE AS new_rows",
            "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
            "DELETE": "OLD TABLE AS old_rows",
        }
        for event, referencing in transitions.items():
            trigger = _ident(f"fno_track_{table}_{event.lower()}")
            yield f"DROP TRIGGER IF EXISTS {trigger} ON {_ident(table)}"
            yield (
                f"CREATE TRIGGER {trigger} AFTER {event} ON {_ident(table)} "
                f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
        return
    unmarked = f'NOT EXISTS (SELECT 1 FROM "{writer.name}")'  # noqa: S608
    new_key, old_key = _sqlite_json("NEW", keys), _sqlite_json("OLD", keys)
    old_row = _sqlite_json("OLD", columns)
    insert = f"INSERT INTO {log} (table_name, op, key, before)"
    same = " AND ".join(f"OLD.{_ident(c)} IS NEW.{_ident(c)}" for c in keys)
    bodies = {
        "INSERT": f"{insert} VALUES ('{table}', 'I', {new_key}, NULL);",
        "UPDATE": (
            f"{insert} SELECT '{table}', 'D', {old_key}, {old_row} WHERE NOT ({same});"
            f"{insert} VALUES ('{table}', 'U', {new_key}, {old_row});"
        ),
        "DELETE": f"{insert} VALUES ('{table}', 'D', {old_key}, {old_row});",
    }
    for event, body in bodies.items():
        trigger = _ident(f"fno_track_{table}_{event.lower()}")
        yield f"DROP TRIGGER IF EXISTS {trigger}"
        yield (
            f"CREATE TRIGGER {trigger} AFTER {event} ON {_ident(table)} "
            f"WHEN {unmarked} BEGIN {body} END"
        )


def _sqlite_json(row: str, columns: list[str]) -> str:
    """json_object over the columns, in parts merged by json_patch: one SQLite function
    takes at most 127 arguments."""
    parts = [
        "json_object(" + ", ".join(f"'{c}', {row}.{_ident(c)}" for c in columns[i : i + 60]) + ")"
        for i in range(0, len(columns), 60)
    ]
    merged = parts[0]
    for part in parts[1:]:
        merged = f"json_patch({merged}, {part})"
    return merged


def _ident(name: str) -> str:
    """A quoted identifier; names come from entity metadata, never from a request."""
    if '"' in name or "'" in name:
        raise ValueError(f"unsupported identifier {name!r}")
    return f'"{name}"'
