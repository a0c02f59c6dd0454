"""Apply one validated change to an F&O store, inside the caller's transaction.

The row is locked before it is compared with the version the writer read, so two
writers of one row cannot both win. References (to-one relations) must name rows
that exist, as F&O's own validation insists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, and_, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from datasources.sql import outbox
from datasources.sql.bulk import bulk_insert
from gateway.kernel.catalog import Cardinality, EntityMetadata, Relation
from gateway.kernel.change import Change, ChangeKind, version_field
from gateway.kernel.errors import BadUserInput, Conflict, NotFound

Row = dict[str, Any]
ANALYZE_AFTER = 1000  # rows a bulk write adds before the table's statistics are renewed
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
        read_back: bool = True,
    ) -> tuple[Row | None, Row | None]:
        """Apply the change; `read_back=False` skips reading the row afterwards (its
        `after` is then None), for a writer that does not need it."""
        return await apply_change(
            self._conn, self._table_for, entity, targets, change, values, read_back
        )

    async def update(
        self, entity: EntityMetadata, key: Mapping[str, Any], values: Mapping[str, Any]
    ) -> Row:
        """Update a row whose values need no check against it (no version, no
        references): one statement, which answers with the row as it is now."""
        table = self._table_for(entity)
        where = and_(*(table.c[entity.field(k).column] == v for k, v in key.items()))
        done = await self._conn.execute(
            update(table).where(where).values(_assignments(entity, table, values)).returning(table)
        )
        found = done.first()
        if found is None:
            raise NotFound(f"there is no {_describe(entity, key)}")
        return _row(entity, found._mapping)

    def plain_update(
        self, entity: EntityMetadata, targets: Mapping[str, EntityMetadata], change: Change
    ) -> bool:
        """Whether `update` can apply the change (nothing to compare or check)."""
        return change.expected_version is None and not _references(
            entity, targets, set(change.values)
        )

    async def upsert_many(
        self,
        entity: EntityMetadata,
        targets: Mapping[str, EntityMetadata],
        key: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        new_row: Callable[[], Mapping[str, Any]] = dict,
    ) -> dict[int, str]:
        """Insert the rows that are new (with what `new_row` adds, such as a row id) and
        update those whose `key` exists: a bulk copy, one statement to find and one to
        insert. Returns the refused rows' problems by position; the rest are written."""
        refused = await _missing_references(self._conn, self._table_for, entity, targets, rows)
        table = self._table_for(entity)
        version = version_field(entity)
        columns = [table.c[entity.field(k).column] for k in key]
        pick = itemgetter(*key)
        wanted = [(r, pick(r)) for i, r in enumerate(rows) if i not in refused]
        if len(key) == 1:  # itemgetter of one name gives the value, not a tuple
            wanted = [(r, (k,)) for r, k in wanted]
        found = await _existing(self._conn, columns, [k for _, k in wanted])
        fresh: list[Mapping[str, Any]] = []
        known: list[Mapping[str, Any]] = []
        for row, row_key in wanted:
            (known if row_key in found else fresh).append(row)
        if fresh:
            stored = [{**new_row(), **r} for r in fresh]
            if version is not None:
                for r in stored:
                    r[version] = 1
            await bulk_insert(self._conn, table, stored, {f.column: f.name for f in entity.fields})
            if self._conn.dialect.name == "postgresql" and len(fresh) >= ANALYZE_AFTER:
                await _analyze_if_unknown(self._conn, table, columns)
        for row in known:
            where = and_(*(c == row[k] for c, k in zip(columns, key, strict=True)))
            values: dict[str, Any] = {
                entity.field(n).column: v for n, v in row.items() if n not in key
            }
            if version is not None:
                column = table.c[entity.field(version).column]
                values[column.name] = column + 1
            await self._conn.execute(update(table).where(where).values(values))
        return refused

    async def rows(
        self, entity: EntityMetadata, key: Sequence[str], values: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], Row]:
        """The rows whose `key` fields hold these values, by those values, as this
        transaction sees them."""
        table = self._table_for(entity)
        columns = [table.c[entity.field(k).column] for k in key]
        found: dict[tuple[Any, ...], Row] = {}
        for where, last, tails in _by_prefix(columns, values):
            for start in range(0, len(tails), 1000):
                chosen = select(table).where(*where, last.in_(tails[start : start + 1000]))
                for r in await self._conn.execute(chosen):
                    found[tuple(r._mapping[c] for c in columns)] = _row(entity, r._mapping)
        return found

    async def raise_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Write events into the store's outbox, in this transaction (see `outbox`)."""
        await outbox.add(self._conn, [dict(e) for e in events])

    async def find(self, entity: EntityMetadata, key: Mapping[str, Any]) -> Row | None:
        """The row with these field values (a key, or an alternate key), if there is one."""
        table = self._table_for(entity)
        where = and_(*(table.c[entity.field(k).column] == v for k, v in key.items()))
        found = (await self._conn.execute(select(table).where(where).limit(1))).first()
        return _row(entity, found._mapping) if found is not None else None


async def _analyze_if_unknown(conn: AsyncConnection, table: Table, keys: Sequence[Any]) -> None:
    """A table filling fast from empty outruns autovacuum: with no statistics the planner
    scans it to find the next batch's keys instead of using the index. Once it has any,
    the planner scales them with the table's size, so this runs while the table is small,
    on the key columns and from a small sample: they only have to show its size."""
    known = await conn.scalar(
        text("SELECT reltuples FROM pg_class WHERE oid = CAST(:name AS regclass)"),
        {"name": f'"{table.name}"'},
    )
    if known is not None and known >= ANALYZE_AFTER:
        return
    await conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")
    columns = ", ".join(f'"{c.name}"' for c in keys)
    await conn.exec_driver_sql(f'ANALYZE "{table.name}" ({columns})')


async def apply_change(
    conn: AsyncConnection,
    table_for: TableFor,
    entity: EntityMetadata,
    targets: Mapping[str, EntityMetadata],
    change: Change,
    values: Mapping[str, Any],
    read_back: bool = True,
) -> tuple[Row | None, Row | None]:
    """(before, after): the row as it was and as it is, by field name."""
    if not change.key:  # a write without a key would touch every row
        raise BadUserInput(f"a change to {entity.name} must name its row's key")
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
        return None, await _read(conn, table, entity, where) if read_back else None
    if (
        change.kind is ChangeKind.UPDATE
        and not read_back
        and change.expected_version is None
        and not _references(entity, targets, set(values))
    ):
        # nothing to compare or check against the row: one statement, no read
        done = await conn.execute(
            update(table).where(where).values(_assignments(entity, table, values))
        )
        if done.rowcount == 0:
            raise NotFound(f"there is no {described}")
        return None, None
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
    await conn.execute(update(table).where(where).values(_assignments(entity, table, values)))
    return before, await _read(conn, table, entity, where) if read_back else None


async def _existing(
    conn: AsyncConnection, columns: Sequence[Any], keys: Sequence[tuple[Any, ...]]
) -> set[tuple[Any, ...]]:
    """Which of these key values a table holds (queried as `_by_prefix` says)."""
    found: set[tuple[Any, ...]] = set()
    for where, last, tails in _by_prefix(columns, keys):
        if len(tails) > 1:
            # a copy into a table that has none of these keys yet (an initial sync)
            # asks once whether their range holds any row, not once per thousand keys
            # (the stores compare text bytewise, as Python does: see tables.column_type;
            # were one not to, the copy would meet the key's unique index and fail whole)
            span = last.between(min(tails), max(tails))
            if (await conn.execute(select(last).where(*where, span).limit(1))).first() is None:
                continue
        for start in range(0, len(tails), 1000):
            rows = await conn.execute(
                select(*columns).where(*where, last.in_(tails[start : start + 1000]))
            )
            found.update(tuple(r) for r in rows)
    return found


def _by_prefix(
    columns: Sequence[Any], keys: Sequence[tuple[Any, ...]]
) -> Iterator[tuple[list[Any], Any, list[Any]]]:
    """Key values grouped by all but the last column: (the conditions on those, the
    last column, its values), so each query is `a = ? AND b IN (...)`, an index range,
    where a row-value IN list would be a scan."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for values in keys:
        groups.setdefault(values[:-1], []).append(values[-1])
    *fixed, last = columns
    for prefix, tails in groups.items():
        yield [c == v for c, v in zip(fixed, prefix, strict=True)], last, tails


def _assignments(entity: EntityMetadata, table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """The columns an update sets: the values, and the row version one up."""
    assignments: dict[str, Any] = {entity.field(n).column: v for n, v in values.items()}
    version = version_field(entity)
    if version is not None:
        column = table.c[entity.field(version).column]
        assignments[column.name] = column + 1
    return assignments


def _references(
    entity: EntityMetadata, targets: Mapping[str, EntityMetadata], changed: set[str]
) -> bool:
    """Whether changing these fields changes a checked to-one reference."""
    return any(
        r.cardinality is Cardinality.ONE
        and r.target in targets
        and changed & {mine for mine, _ in r.constraints}
        for r in entity.relations
    )


async def _check_references(
    conn: AsyncConnection,
    table_for: TableFor,
    entity: EntityMetadata,
    targets: Mapping[str, EntityMetadata],
    row: Mapping[str, Any],
    changed: set[str],
) -> None:
    refused = await _missing_references(conn, table_for, entity, targets, [row], changed)
    if refused:
        problems = refused[0].split("; ")
        raise BadUserInput(f"{entity.name}: " + refused[0], problems=problems)


async def _missing_references(
    conn: AsyncConnection,
    table_for: TableFor,
    entity: EntityMetadata,
    targets: Mapping[str, EntityMetadata],
    rows: Sequence[Mapping[str, Any]],
    changed: set[str] | None = None,
) -> dict[int, str]:
    """Rows (by position) naming a to-one target row that does not exist, and why.
    Only relations through a field in `changed` are checked (all, when None). Relations
    through the same fields are alternatives (a polymorphic lookup): the value must
    name a row of one of them."""
    problems: dict[int, list[str]] = {}
    alternatives: dict[tuple[str, ...], list[Relation]] = {}
    for relation in entity.relations:
        mine = tuple(m for m, _ in relation.constraints)
        if relation.cardinality is not Cardinality.ONE or relation.target not in targets:
            continue
        if changed is not None and not changed & set(mine):
            continue
        alternatives.setdefault(mine, []).append(relation)
    for relations in alternatives.values():
        missing: dict[int, list[str]] = {}
        for relation in relations:
            found = await _missing_one(conn, table_for, entity, targets, relation, rows)
            for i, message in found.items():
                missing.setdefault(i, []).append(message)
        for i, messages in missing.items():
            if len(messages) == len(relations):
                problems.setdefault(i, []).append(" and ".join(messages))
    return {i: "; ".join(p) for i, p in problems.items()}


async def _missing_one(
    conn: AsyncConnection,
    table_for: TableFor,
    entity: EntityMetadata,
    targets: Mapping[str, EntityMetadata],
    relation: Relation,
    rows: Sequence[Mapping[str, Any]],
) -> dict[int, str]:
    """The rows whose values for this relation name no row of its target."""
    target = targets[relation.target]
    pairs = relation.constraints
    asked = {
        i: tuple(r.get(mine) for mine, _ in pairs)
        for i, r in enumerate(rows)
        if all(r.get(mine) is not None for mine, _ in pairs)
    }
    if not asked:
        return {}
    table = table_for(target)
    columns = [table.c[target.field(theirs).column] for _, theirs in pairs]
    present = await _existing(conn, columns, list(set(asked.values())))
    company = entity.company_field
    missing: dict[int, str] = {}
    for i, values in asked.items():
        if values in present:
            continue
        row = rows[i]
        named = ", ".join(f"{theirs} {row[mine]!r}" for mine, theirs in pairs if mine != company)
        where = f" in {str(row[company]).upper()}" if company is not None else ""
        missing[i] = f"{relation.name}: there is no {target.name} with {named}{where}"
    return missing


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
