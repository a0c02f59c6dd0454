"""Apply one validated change to an F&O store, inside the caller's transaction.

The row is locked before it is compared with the version the writer read, so two
writers of one row cannot both win. References (to-one relations) must name rows
that exist, as F&O's own validation insists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Table, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.catalog import Cardinality, EntityMetadata
from gateway.kernel.change import Change, ChangeKind, version_field
from gateway.kernel.errors import BadUserInput, Conflict, NotFound

Row = dict[str, Any]
TableFor = Callable[[EntityMetadata], Table]


class WriteUnit:
    """Writes inside one open transaction of one store."""

    def __init__(self, conn: AsyncConnection, table_for: TableFor) -> None:
        self._conn = conn
        self._table_for = table_for

    async def apply(
        self,
        entity: EntityMetadata,
        targets: Mapping[str, EntityMetadata],
        change: Change,
        values: Mapping[str, Any],
    ) -> tuple[Row | None, Row | None]:
        return await apply_change(self._conn, self._table_for, entity, targets, change, values)

    async def find(self, entity: EntityMetadata, key: Mapping[str, Any]) -> Row | None:
        """The row with these field values (a key, or an alternate key), if there is one."""
        table = self._table_for(entity)
        where = and_(*(table.c[entity.field(k).column] == v for k, v in key.items()))
        found = (await self._conn.execute(select(table).where(where).limit(1))).first()
        return _row(entity, found._mapping) if found is not None else None


async def apply_change(
    conn: AsyncConnection,
    table_for: TableFor,
    entity: EntityMetadata,
    targets: Mapping[str, EntityMetadata],
    change: Change,
    values: Mapping[str, Any],
) -> tuple[Row | None, Row | None]:
    """(before, after): the row as it was and as it is, by field name."""
    table = table_for(entity)
    version = version_field(entity)
    where = and_(*(table.c[entity.field(k).column] == v for k, v in change.key.items()))
    described = _describe(entity, change.key)
    if change.kind is ChangeKind.CREATE:
        row = {**change.key, **values}
        await _check_references(conn, table_for, entity, targets, row, set(row))
        if version is not None:
            row[version] = 1
        try:
            await conn.execute(
                insert(table).values({entity.field(n).column: v for n, v in row.items()})
            )
        except IntegrityError:  # the transaction is rolled back with this error
            raise Conflict(f"{described} exists already") from None
        return None, await _read(conn, table, entity, where)
    locked = select(table).where(where)
    if conn.dialect.name == "postgresql":
        locked = locked.with_for_update()
    found = (await conn.execute(locked)).first()
    if found is None:
        raise NotFound(f"there is no {described}")
    before = _row(entity, found._mapping)
    if change.expected_version is not None and version is not None:
        current = before[version]
        if current != change.expected_version:
            raise Conflict(
                f"{described} changed since you read it (your version {change.expected_version}, "
                f"now {current}): read it again, then retry",
                currentVersion=current,
            )
    if change.kind is ChangeKind.DELETE:
        await conn.execute(delete(table).where(where))
        return before, None
    merged = {**before, **values}
    await _check_references(conn, table_for, entity, targets, merged, set(values))
    assignments: dict[str, Any] = {entity.field(n).column: v for n, v in values.items()}
    if version is not None:
        column = table.c[entity.field(version).column]
        assignments[column.name] = column + 1
    if assignments:
        await conn.execute(update(table).where(where).values(assignments))
    return before, await _read(conn, table, entity, where)


async def _check_references(
    conn: AsyncConnection,
    table_for: TableFor,
    entity: EntityMetadata,
    targets: Mapping[str, EntityMetadata],
    row: Mapping[str, Any],
    changed: set[str],
) -> None:
    problems: list[str] = []
    for relation in entity.relations:
        target = targets.get(relation.target)
        if relation.cardinality is not Cardinality.ONE or target is None:
            continue
        pairs = relation.constraints
        if not changed & {mine for mine, _ in pairs}:
            continue
        values = [row.get(mine) for mine, _ in pairs]
        if any(v is None for v in values):
            continue
        table = table_for(target)
        exists = await conn.scalar(
            select(1).where(
                *(table.c[target.field(theirs).column] == row[mine] for mine, theirs in pairs)
            )
        )
        if exists is None:
            company = entity.company_field
            named = ", ".join(
                f"{theirs} {row[mine]!r}" for mine, theirs in pairs if mine != company
            )
            where = f" in {str(row[company]).upper()}" if company is not None else ""
            problems.append(f"{relation.name}: there is no {target.name} with {named}{where}")
    if problems:
        raise BadUserInput(f"{entity.name}: " + "; ".join(problems), problems=problems)


async def _read(conn: AsyncConnection, table: Table, entity: EntityMetadata, where: Any) -> Row:
    found = (await conn.execute(select(table).where(where))).first()
    assert found is not None
    return _row(entity, found._mapping)


def _row(entity: EntityMetadata, mapping: Mapping[Any, Any]) -> Row:
    return {f.name: mapping[f.column] for f in entity.fields}


def _describe(entity: EntityMetadata, key: Mapping[str, Any]) -> str:
    parts = ", ".join(
        f"{name} {str(value).upper() if name == entity.company_field else value!r}"
        for name, value in key.items()
    )
    return f"{entity.name} with {parts}"
