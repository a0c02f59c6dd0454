"""The F&O side of the Power Platform link: one row naming the linked Dataverse
environment, as the F&O runtime learns of the link."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from datasources.sql.tables import UtcDateTime

fno_link_metadata = MetaData()
dataverse_link = Table(
    "sysdataverselink",
    fno_link_metadata,
    Column("linkid", String(36), primary_key=True),
    Column("environment", String(100), nullable=False),
    Column("url", String(1000), nullable=False),
    Column("linkedon", UtcDateTime, nullable=False),
)


async def record_dataverse_link(
    conn: AsyncConnection, link_id: str, environment: str, url: str
) -> None:
    await conn.run_sync(lambda c: fno_link_metadata.create_all(c, checkfirst=True))
    await conn.execute(delete(dataverse_link))
    await conn.execute(
        dataverse_link.insert().values(
            linkid=link_id, environment=environment, url=url, linkedon=dt.datetime.now(dt.UTC)
        )
    )


async def dataverse_link_of(conn: AsyncConnection) -> dict[str, Any] | None:
    has = await conn.run_sync(lambda c: c.dialect.has_table(c, dataverse_link.name))
    if not has:
        return None
    row = (await conn.execute(select(dataverse_link))).first()
    return dict(row._mapping) if row is not None else None


async def remove_dataverse_link(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda c: fno_link_metadata.create_all(c, checkfirst=True))
    await conn.execute(delete(dataverse_link))
