"""The control store: the gateway's own state (catalog flags, tenant, jobs, maps, event
log, endpoints), its schema kept by Alembic migrations (`gateway/migrations`).

`migrate` brings a store to the newest revision: an empty one is created, one made
before migrations existed (by the first releases' create-all) is adopted as the
baseline, then upgraded. Replicas starting together migrate one at a time.
"""

from __future__ import annotations

import importlib

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

control_metadata = MetaData()

BASELINE = "0001"  # the schema as the releases before migrations made it
MIGRATION_LOCK = 7_300_001  # a PostgreSQL advisory lock: one replica migrates at a time
_TABLE_MODULES = (
    "gateway.auth",
    "gateway.catalog.service",
    "gateway.dualwrite.tables",
    "gateway.events.log",
    "gateway.events.tables",
    "gateway.jobs",
    "gateway.leases",
    "gateway.setup.status",
    "gateway.tenant",
)


def load_tables() -> None:
    """Import every module that declares control-store tables, so the metadata is whole."""
    for module in _TABLE_MODULES:
        importlib.import_module(module)


def config(connection: Connection | None = None) -> Config:
    settings = Config()
    settings.set_main_option("script_location", "gateway:migrations")
    settings.attributes["connection"] = connection
    return settings


def head() -> str:
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


async def revision(engine: AsyncEngine) -> str | None:
    """The store's revision (None: empty, or made before migrations)."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def migrate(engine: AsyncEngine, to: str = "head") -> None:
    """Upgrade the store to revision `to` (the newest, unless a test asks for another)."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        await conn.run_sync(_upgrade, to)


def _upgrade(connection: Connection, to: str) -> None:
    settings = config(connection)
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None and inspect(connection).has_table("job"):
        command.stamp(settings, BASELINE)  # made by create-all before migrations
    command.upgrade(settings, to)
