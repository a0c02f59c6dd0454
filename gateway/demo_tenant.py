"""The demo tenant: Contoso, its administrator, and one deployed sandbox environment
over the demo F&O store, so setup can be tried on first start."""

from __future__ import annotations

from gateway.kernel.tenant import GIB, AdminRole, DeploymentState, EnvironmentType, Licence
from gateway.tenant import TenantService

ADMINISTRATOR = "admin@contoso.com"
ENVIRONMENT = "contoso-sandbox"
TENANT_ID = "6f0c4e2a-3b1d-4c5e-9a7f-2d8b1e0c3a55"


async def seed_demo_tenant(tenant: TenantService, fno_url: str) -> None:
    """Fill a tenant created just now; a tenant that exists is left as it is."""
    await tenant.create_user(ADMINISTRATOR, "Contoso Admin")
    await tenant.set_role(ADMINISTRATOR, AdminRole.GLOBAL_ADMIN, True)
    await tenant.set_licence(ADMINISTRATOR, Licence.DYNAMICS_365_UNIFIED_OPERATIONS_PLAN, True)
    await tenant.create_user("pat@contoso.com", "Pat Accountant")
    await tenant.set_licence("pat@contoso.com", Licence.FINANCE, True)
    await tenant.create_environment(
        ENVIRONMENT, EnvironmentType.SANDBOX, fno_url, ADMINISTRATOR, DeploymentState.DEPLOYED
    )


DEMO_CAPACITY = 10 * GIB  # what an F&O licence brings a tenant
