"""What setup does inside a Dataverse store: create its tables, install solutions,
record the link, keep add-in configuration and the dual-write map definitions.

Every write here is idempotent (an upsert of a row by its name), so a stage that is
run again after a crash or a failure leaves the same state as one run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Text,
    delete,
    inspect,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from datasources.dataverse.tables import ALTERNATE_KEYS, NATIVE_TABLES
from datasources.sql.metadata import create_system_tables, publish_entity
from datasources.sql.tables import entity_table
from gateway.kernel.json import dumps, loads

platform = MetaData()
solution = Table(
    "solution",
    platform,
    Column("uniquename", String(100), primary_key=True),
    Column("installedon", DateTime(timezone=True), nullable=False),
)
integration_details = Table(
    "integrationdetails",
    platform,
    Column("id", String(36), primary_key=True),
    Column("environment", String(100), nullable=False),
    Column("url", String(500), nullable=False),
    Column("tenantid", String(36), nullable=False),
    Column("linkedon", DateTime(timezone=True), nullable=False),
)
add_in_configuration = Table(
    "addinconfiguration",
    platform,
    Column("addin", String(100), primary_key=True),
    Column("parameters", Text, nullable=False),
    Column("installedon", DateTime(timezone=True), nullable=False),
)
map_definition = Table(
    "dualwritemapdefinition",
    platform,
    Column("name", String(200), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("installedon", DateTime(timezone=True), nullable=False),
)


async def create_native_tables(conn: AsyncConnection) -> None:
    """The tables and their published metadata; what exists already is left alone."""
    tables = MetaData()
    for entity in NATIVE_TABLES:
        table = entity_table(entity, tables, conn.dialect.name)
        columns = ALTERNATE_KEYS.get(entity.name)
        if columns:
            Index(f"ak_{entity.table}", *(table.c[c] for c in columns), unique=True)
    await create_system_tables(conn)
    await conn.run_sync(lambda c: tables.create_all(c, checkfirst=True))
    await conn.run_sync(lambda c: platform.create_all(c, checkfirst=True))
    for entity in NATIVE_TABLES:
        await publish_entity(conn, entity)


async def create_platform_tables(conn: AsyncConnection) -> None:
    """The platform records alone (for an environment whose tables are elsewhere)."""
    await conn.run_sync(lambda c: platform.create_all(c, checkfirst=True))


async def missing_native_tables(conn: AsyncConnection) -> list[str]:
    """Native tables a store lacks: a store without them was not made with D365 apps."""
    names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    return missing_of(names)


def missing_of(published: set[str]) -> list[str]:
    """The native tables not among these published names."""
    return [t.table for t in NATIVE_TABLES if t.table not in published]


async def install_solutions(conn: AsyncConnection, names: Sequence[str]) -> None:
    await conn.run_sync(lambda c: platform.create_all(c, checkfirst=True))
    installed = set((await conn.execute(select(solution.c.uniquename))).scalars())
    now = dt.datetime.now(dt.UTC)
    rows = [{"uniquename": n, "installedon": now} for n in names if n not in installed]
    if rows:
        await conn.execute(solution.insert(), rows)


async def solutions(conn: AsyncConnection) -> list[str]:
    return list((await conn.execute(select(solution.c.uniquename))).scalars())


async def record_link(conn: AsyncConnection, link_id: str, details: Mapping[str, str]) -> None:
    """`RetrieveFinanceAndOperationsIntegrationDetails` answers from this row."""
    await conn.execute(delete(integration_details))
    await conn.execute(
        integration_details.insert().values(id=link_id, linkedon=dt.datetime.now(dt.UTC), **details)
    )


async def link_details(conn: AsyncConnection) -> dict[str, Any] | None:
    row = (await conn.execute(select(integration_details))).first()
    return dict(row._mapping) if row is not None else None


async def remove_link(conn: AsyncConnection) -> None:
    await conn.execute(delete(integration_details))


async def save_add_in(conn: AsyncConnection, add_in: str, parameters: Mapping[str, Any]) -> None:
    await conn.run_sync(lambda c: platform.create_all(c, checkfirst=True))
    await conn.execute(delete(add_in_configuration).where(add_in_configuration.c.addin == add_in))
    await conn.execute(
        add_in_configuration.insert().values(
            addin=add_in, parameters=dumps(dict(parameters)), installedon=dt.datetime.now(dt.UTC)
        )
    )


async def add_in_parameters(conn: AsyncConnection, add_in: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(add_in_configuration.c.parameters).where(add_in_configuration.c.addin == add_in)
        )
    ).first()
    return loads(row[0]) if row is not None else None


async def remove_add_in(conn: AsyncConnection, add_in: str) -> None:
    await conn.execute(delete(add_in_configuration).where(add_in_configuration.c.addin == add_in))


async def install_map_definitions(
    conn: AsyncConnection, definitions: Sequence[Mapping[str, Any]]
) -> None:
    await conn.run_sync(lambda c: platform.create_all(c, checkfirst=True))
    names = [str(d["name"]) for d in definitions]
    await conn.execute(delete(map_definition).where(map_definition.c.name.in_(names)))
    now = dt.datetime.now(dt.UTC)
    await conn.execute(
        map_definition.insert(),
        [
            {"name": d["name"], "definition": dumps(dict(d)), "installedon": now}
            for d in definitions
        ],
    )


async def map_definitions(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(select(map_definition.c.definition).order_by(map_definition.c.name))
    return [loads(r[0]) for r in rows]


async def remove_map_definition(conn: AsyncConnection, name: str) -> None:
    await conn.execute(delete(map_definition).where(map_definition.c.name == name))


async def remove_map_definitions(conn: AsyncConnection) -> None:
    await conn.execute(delete(map_definition))
