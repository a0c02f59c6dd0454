"""The Dataverse store linked to this gateway's own F&O environment.

Once setup links the environment, its Dataverse tables join the schema; unlinking
takes them out. The gateway's F&O environment is the one whose store URL is the
gateway's F&O store.

A Dataverse environment is a database, or a real one reached over its Web API
(OData): then its tables are read and written there, its changes come from its
change feed, and the gateway's platform records for it are kept apart
(`Location.platform_for`).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.dataverse.provisioner import Location
from datasources.dataverse.tables import NATIVE_TABLES
from datasources.odata.endpoint import Endpoint, is_odata
from datasources.odata.source import ODataSource
from datasources.sql.engine import create_engine
from datasources.sql.source import SqlDataSource
from gateway.kernel.catalog import ResolvedCatalog, resolve_catalog
from gateway.kernel.setup import SetupState
from gateway.setup.service import IntegrationService
from gateway.tenant import TenantService

NATIVE = frozenset(t.name for t in NATIVE_TABLES)  # what a Web API's schema shows of its tables


class LinkedDataverse:
    def __init__(
        self,
        fno_url: str,
        tenant: TenantService,
        integrations: IntegrationService,
        control: AsyncEngine,
        location: Location,
        pool_size: int | None = None,
        read_pool_size: int = 10,
    ) -> None:
        self._fno_url = fno_url
        self._tenant = tenant
        self._integrations = integrations
        self._control = control
        self._location = location
        self._pool_size = pool_size
        self._read_pool_size = read_pool_size
        self.url: str | None = None
        self.source: SqlDataSource | ODataSource | None = None
        self.platform: AsyncEngine | None = None  # where its platform records are
        self.environment: str | None = None  # the linked F&O environment's name

    async def _linked(self) -> tuple[str | None, str | None, str | None]:
        """The linked F&O environment's name, and the Dataverse environment's name and URL."""
        for env in await self._tenant.environments():
            if env.fno_url != self._fno_url:
                continue
            status = await self._integrations.status(env.name)
            if status.state is SetupState.COMPLETED and status.dataverse_environment:
                found = await self._tenant.dataverse_environment(status.dataverse_environment)
                if found is not None:
                    return env.name, found.name, found.url
        return None, None, None

    async def catalog(self) -> ResolvedCatalog | None:
        """The linked store's tables (opening or closing the store as the link changed)."""
        self.environment, name, url = await self._linked()
        if url != self.url:
            await self.close()
            self.url = url
            if name is not None and url is not None:
                await self._open(name, url)
        if self.source is None:
            return None
        published = await self.source.published_entities()
        if isinstance(self.source, ODataSource):
            published = [e for e in published if e.name in NATIVE]
        return resolve_catalog(published)

    async def _open(self, name: str, url: str) -> None:
        if is_odata(url):
            # Dataverse tables raise no events; the control store keeps the feed's place
            self.source = ODataSource(Endpoint.parse(url), self._control, raises_events=False)
            self.platform = create_engine(self._location.platform_for(name, url), self._pool_size)
        else:
            self.source = SqlDataSource(create_engine(url, self._pool_size), self._read_pool_size)
            self.platform = self.source.engine
        await self.source.prepare_outbox()

    async def close(self) -> None:
        if isinstance(self.source, ODataSource) and self.platform is not None:
            await self.platform.dispose()
        if self.source is not None:
            await self.source.close()
        self.source = self.platform = None
