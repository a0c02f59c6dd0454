"""Bulk loading: many rows into one table, past SQLAlchemy's per-row parameter handling.

Values are converted by the column types' own bind processors, so rows land exactly
as `insert()` would have stored them; PostgreSQL takes them through COPY.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection


async def bulk_insert(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> int:
    if not rows:
        return 0
    dialect = conn.dialect
    given = set(rows[0])
    columns = [c.key for c in table.columns if c.key in given]  # the compiled INSERT's order
    processors = [table.c[c].type.bind_processor(dialect) for c in columns]
    converted = [
        tuple(
            value if process is None or value is None else process(value)
            for value, process in zip((row[c] for c in columns), processors, strict=True)
        )
        for row in rows
    ]
    if dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(table.name, records=converted, columns=columns)
        return len(rows)
    statement = insert(table).compile(dialect=dialect, column_keys=columns)
    await conn.exec_driver_sql(str(statement), converted)
    return len(rows)
