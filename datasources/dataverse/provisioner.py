"""Where new Dataverse stores live, and how one is created, measured and removed.

A location is a folder (each environment a SQLite file in it) or a PostgreSQL
server URL (each environment its own database on that server). Creating a store that
exists already is not an error: provisioning may run a stage twice.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import anyio
from sqlalchemy import text
from sqlalchemy.engine import make_url

from datasources.odata.endpoint import is_odata
from datasources.sql.stores import connect, redact
from gateway.kernel.errors import UpstreamFailed


def store_name(environment: str) -> str:
    """A database or file name for an environment: readable, and unique per name."""
    slug = re.sub(r"[^a-z0-9]+", "_", environment.lower()).strip("_")[:40] or "env"
    digest = hashlib.sha256(environment.encode()).hexdigest()[:6]
    return f"dataverse_{slug}_{digest}"


class Location:
    """Where this gateway creates Dataverse stores."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.is_folder = "://" not in where

    def __repr__(self) -> str:
        return f"Location({redact(self.where) if not self.is_folder else self.where!r})"

    def platform_for(self, environment: str, url: str) -> str:
        """Where a Dataverse environment's platform records are (solutions, the link,
        add-in configuration, dual-write map definitions): in its store, or, for one
        reached over its Web API, which holds its tables but not the gateway's records,
        in a store of this location's."""
        return self.url_for(environment) if is_odata(url) else url

    def url_for(self, environment: str) -> str:
        name = store_name(environment)
        if self.is_folder:
            return f"sqlite:///{(Path(self.where) / f'{name}.db').resolve()}"
        return make_url(self.where).set(database=name).render_as_string(hide_password=False)

    async def create(self, environment: str) -> str:
        """Make the empty store (if it is not there yet) and return its URL."""
        url = self.url_for(environment)
        if self.is_folder:
            folder = anyio.Path(self.where)
            try:
                await folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UpstreamFailed(
                    f"cannot create Dataverse stores in {folder}: {exc.strerror}: make it a "
                    "writable folder (GATEWAY_DATAVERSE_LOCATION)"
                ) from exc
            return url
        name = store_name(environment)
        async with connect(self.where, write=False) as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return url

    async def drop(self, url: str) -> None:
        """Remove a store this location made (the environment's data goes with it)."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                await anyio.Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
            return
        async with connect(self.where, write=False) as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


async def store_size(url: str) -> int:
    """Bytes the store takes on disk (0 for one reached over its Web API: its service
    counts its capacity, not this tenant's)."""
    if is_odata(url):
        return 0
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        total = 0
        for suffix in ("", "-wal"):
            path = anyio.Path(f"{parsed.database}{suffix}")
            if await path.exists():
                total += (await path.stat()).st_size
        return total
    async with connect(url, write=False) as conn:
        size = await conn.scalar(text("SELECT pg_database_size(current_database())"))
    return int(size or 0)
