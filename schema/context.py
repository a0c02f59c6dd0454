"""What a resolver gets from the request: who is asking, and the services to ask."""

from __future__ import annotations

from dataclasses import dataclass

from datasources.base import DataSource
from gateway.auth import Principal, Role
from gateway.catalog.service import CatalogService
from gateway.kernel.errors import Forbidden, Unauthenticated


@dataclass(frozen=True)
class ReadLimits:
    default_page_size: int = 100
    max_page_size: int = 10_000


@dataclass(frozen=True)
class RequestContext:
    principal: Principal
    fno: DataSource
    catalog: CatalogService
    limits: ReadLimits

    def require(self, role: Role) -> None:
        """Refuse the operation unless the caller holds `role` (admin holds every role)."""
        if self.principal.has(role):
            return
        if self.principal.anonymous:
            raise Unauthenticated(
                f"this operation needs the {role.value} role: "
                "send 'Authorization: Bearer <token>' (see `fno-gateway token`)"
            )
        raise Forbidden(
            f"this operation needs the {role.value} role, which {self.principal.subject} lacks"
        )
