"""Whether a store answers, and what an OData one publishes, whatever kind it is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from datasources.odata.endpoint import Endpoint, is_odata
from datasources.odata.source import ODataSource
from datasources.sql.stores import probe


@asynccontextmanager
async def odata(url: str) -> AsyncIterator[ODataSource]:
    source = ODataSource(Endpoint.parse(url))
    try:
        yield source
    finally:
        await source.close()


async def reach(url: str) -> None:
    """Raise UPSTREAM_FAILED unless the store (a database or an OData service) answers."""
    if not is_odata(url):
        await probe(url)
        return
    async with odata(url) as source:
        await source.ping()


async def published(url: str) -> set[str]:
    """The entity type names an OData service publishes."""
    async with odata(url) as source:
        return {e.name for e in await source.published_entities()}
