"""What a resolver gets from the request: who is asking, and the services to ask."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from datasources.base import DataSource
from gateway.auth import Authenticator, Principal, Role
from gateway.catalog.service import CatalogService
from gateway.dualwrite.initial_sync import InitialSync
from gateway.dualwrite.service import DualWriteService
from gateway.events.dispatch import Dispatcher
from gateway.events.endpoints import EndpointService
from gateway.events.log import EventLog
from gateway.events.stream import EventStream
from gateway.kernel.errors import Forbidden, LimitExceeded, Unauthenticated, UpstreamFailed
from gateway.kernel.plan import QueryPlan
from gateway.setup.addins import AddInService
from gateway.setup.service import IntegrationService
from gateway.tenant import TenantService
from gateway.writes import WritePipeline

T = TypeVar("T")


@dataclass(frozen=True)
class ReadLimits:
    default_page_size: int = 100
    max_page_size: int = 10_000
    max_cost: int = 2_000_000
    read_seconds: float = 30.0

    def check_cost(self, cost: int) -> None:
        if cost > self.max_cost:
            raise LimitExceeded(
                f"the query may return {cost:,} objects (page sizes multiplied down the "
                f"tree), past the limit of {self.max_cost:,} (GATEWAY_MAX_COST): ask for "
                "smaller pages (first/last) and page through",
                limit="GATEWAY_MAX_COST",
            )


@dataclass(frozen=True)
class Services:
    """The services behind mutations and subscriptions (the read path needs none)."""

    auth: Authenticator
    tenant: TenantService
    integrations: IntegrationService
    add_ins: AddInService
    dualwrite: DualWriteService
    initial_sync: InitialSync
    writes: WritePipeline
    events: EventLog
    stream: EventStream
    endpoints: EndpointService
    dispatcher: Dispatcher


@dataclass
class RequestContext:
    principal: Principal
    fno: DataSource
    catalog: CatalogService
    limits: ReadLimits
    services: Services | None = None
    connection_params: dict[str, Any] | None = field(default=None, repr=False)
    """A WebSocket's connection_init payload (where its Authorization travels)."""
    rejection: str | None = None
    """Why a WebSocket's credentials were refused: every operation on it reports this."""
    websocket_scope: MutableMapping[str, Any] | None = field(default=None, repr=False)
    """The ASGI scope of the WebSocket connection the request came on, if any."""
    dataverse: DataSource | None = None
    """The Dataverse store linked to the F&O environment, once setup linked one."""
    cost: int = 0
    """What the reads planned so far may return, in objects (see ReadLimits.max_cost)."""
    deadline: float = field(default_factory=time.monotonic)
    """When the request's reads must have answered (the event loop's clock: monotonic)."""

    def __post_init__(self) -> None:
        self.deadline += self.limits.read_seconds

    async def in_time(self, read: Awaitable[T]) -> T:
        """The read's result, if it comes within the request's time limit. The read runs
        to its end either way (a connection never goes back mid-statement)."""
        task = asyncio.ensure_future(read)
        try:
            async with asyncio.timeout_at(self.deadline):
                return await asyncio.shield(task)
        except TimeoutError:
            seconds = self.limits.read_seconds
            raise LimitExceeded(
                f"the read ran past the time limit of {seconds:g} s "
                "(GATEWAY_OPERATION_SECONDS): narrow it with where, or ask for smaller pages",
                limit="GATEWAY_OPERATION_SECONDS",
            ) from None

    def charge(self, plan: QueryPlan) -> None:
        """Count a read against the request's cost limit before it runs."""
        self.cost += plan.cost()
        self.limits.check_cost(self.cost)

    def source(self, name: str) -> DataSource:
        """The store an entity binding names."""
        if name == "fno":
            return self.fno
        if self.dataverse is None:
            raise UpstreamFailed("the Dataverse environment is no longer linked; query again")
        return self.dataverse

    @property
    def control(self) -> Services:
        assert self.services is not None, "the control plane is not wired into this context"
        return self.services

    def authenticated(self) -> Principal:
        """The caller, who must have presented valid credentials."""
        if self.rejection is not None:
            raise Unauthenticated(self.rejection)
        if self.principal.anonymous:
            raise Unauthenticated(
                "sign in first: send 'Authorization: Bearer <token or API key>' "
                "(`fno-gateway token create`)"
            )
        return self.principal

    def require(self, role: Role) -> Principal:
        """Refuse the operation unless the caller holds `role` (admin holds every role)."""
        if self.rejection is not None:
            raise Unauthenticated(self.rejection)
        if self.principal.has(role):
            return self.principal
        if self.principal.anonymous:
            raise Unauthenticated(
                f"this operation needs the {role.value} role: send "
                "'Authorization: Bearer <token or API key>' (`fno-gateway token create`)"
            )
        raise Forbidden(
            f"this operation needs the {role.value} role, which {self.principal.subject} lacks"
        )
