"""Bulk loading: many rows into one table, past SQLAlchemy's per-row parameter handling.

Values are converted by the column types' own bind processors, so rows land exactly
as `insert()` would have stored them; PostgreSQL takes them through COPY.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import asyncpg
from sqlalchemy import Table, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection


async def bulk_insert(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    names: Mapping[str, str] | None = None,
) -> int:
    """Insert the rows, keyed by column, or by the names `names` gives each column."""
    if not rows:
        return 0
    dialect = conn.dialect
    given = set(rows[0])
    named = names or {c.key: c.key for c in table.columns}
    # the compiled INSERT's order
    columns = [c.key for c in table.columns if named.get(c.key) in given]
    pick = itemgetter(*(named[c] for c in columns))
    converted: list[tuple[Any, ...]] = [
        (pick(row),) if len(columns) == 1 else pick(row) for row in rows
    ]
    processors = [
        (i, process)
        for i, c in enumerate(columns)
        if (process := table.c[c].type.bind_processor(dialect)) is not None
    ]
    if processors:  # only the columns whose type converts values pay for it
        converted = [_processed(values, processors) for values in converted]
    if dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            await driver.copy_records_to_table(table.name, records=converted, columns=columns)
        except asyncpg.PostgresError as exc:  # raised past SQLAlchemy: reported as it would
            raise DBAPIError(f"COPY {table.name}", None, exc) from exc
        return len(rows)
    statement = insert(table).compile(dialect=dialect, column_keys=columns)
    await conn.exec_driver_sql(str(statement), converted)
    return len(rows)


def _processed(values: tuple[Any, ...], processors: list[tuple[int, Any]]) -> tuple[Any, ...]:
    out = list(values)
    for i, process in processors:
        if out[i] is not None:
            out[i] = process(out[i])
    return tuple(out)
