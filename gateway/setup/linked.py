"""The Dataverse store linked to this gateway's own F&O environment.

Once setup links the environment, its Dataverse tables join the schema; unlinking
takes them out. The gateway's F&O environment is the one whose store URL is the
gateway's F&O store.
"""

from __future__ import annotations

from datasources.sql.engine import create_engine
from datasources.sql.source import SqlDataSource
from gateway.kernel.catalog import ResolvedCatalog, resolve_catalog
from gateway.kernel.setup import SetupState
from gateway.setup.service import IntegrationService
from gateway.tenant import TenantService


class LinkedDataverse:
    def __init__(
        self,
        fno_url: str,
        tenant: TenantService,
        integrations: IntegrationService,
        pool_size: int | None = None,
        read_pool_size: int = 10,
    ) -> None:
        self._fno_url = fno_url
        self._tenant = tenant
        self._integrations = integrations
        self._pool_size = pool_size
        self._read_pool_size = read_pool_size
        self.url: str | None = None
        self.source: SqlDataSource | None = None
        self.environment: str | None = None  # the linked F&O environment's name

    async def _linked(self) -> tuple[str | None, str | None]:
        for env in await self._tenant.environments():
            if env.fno_url != self._fno_url:
                continue
            status = await self._integrations.status(env.name)
            if status.state is SetupState.COMPLETED and status.dataverse_environment:
                found = await self._tenant.dataverse_environment(status.dataverse_environment)
                if found is not None:
                    return env.name, found.url
        return None, None

    async def catalog(self) -> ResolvedCatalog | None:
        """The linked store's tables (opening or closing the store as the link changed)."""
        self.environment, url = await self._linked()
        if url != self.url:
            await self.close()
            self.url = url
            if url is not None:
                self.source = SqlDataSource(
                    create_engine(url, self._pool_size), self._read_pool_size
                )
                await self.source.prepare_outbox()
        if self.source is None:
            return None
        return resolve_catalog(await self.source.published_entities())

    async def close(self) -> None:
        if self.source is not None:
            await self.source.close()
            self.source = None
