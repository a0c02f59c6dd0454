"""The control store: the gateway's own state (catalog flags now; jobs, maps, outbox later)."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

control_metadata = MetaData()


async def create_control_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(control_metadata.create_all)
