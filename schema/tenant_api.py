"""The tenant in GraphQL: directory, licences, capacity, policy, environments, API keys.

Reading environments needs the reader role; everything else here is for admins.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from gateway.auth import Role
from gateway.kernel.errors import BadUserInput
from gateway.kernel.tenant import (
    GIB,
    AdminRole,
    DeploymentState,
    EnvironmentCreationPolicy,
    EnvironmentType,
    Licence,
)
from schema.context import RequestContext
from schema.control_types import (
    ApiKey,
    Capacity,
    DataverseEnvironment,
    Environment,
    Me,
    NewApiKey,
    Tenant,
    User,
)


def _admin(info: strawberry.Info) -> RequestContext:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    return context


@strawberry.field(name="me", description="Who the gateway takes the caller to be.")
def me(info: strawberry.Info) -> Me:
    context: RequestContext = info.context
    p = context.principal
    companies = None if p.companies is None else sorted(c.upper() for c in p.companies)
    return Me(subject=p.subject, roles=sorted(p.roles), companies=companies, anonymous=p.anonymous)


@strawberry.field(name="tenant", description="The tenant's directory, capacity and policy.")
async def tenant(info: strawberry.Info) -> Tenant:
    services = _admin(info).control
    found = await services.tenant.tenant()
    return Tenant(
        name=found.name,
        tenant_id=found.tenant_id,
        policy=found.policy,
        capacity=Capacity.of(await services.tenant.capacity()),
        users=[User.of(u) for u in await services.tenant.users()],
    )


@strawberry.field(name="environments", description="The tenant's F&O environments.")
async def environments(info: strawberry.Info) -> list[Environment]:
    context: RequestContext = info.context
    context.require(Role.READER)
    return [Environment.of(e) for e in await context.control.tenant.environments()]


@strawberry.field(name="environment", description="One F&O environment by name.")
async def environment(info: strawberry.Info, name: str) -> Environment:
    context: RequestContext = info.context
    context.require(Role.READER)
    return Environment.of(await context.control.tenant.environment(name))


@strawberry.field(name="dataverseEnvironments", description="Dataverse environments known here.")
async def dataverse_environments(info: strawberry.Info) -> list[DataverseEnvironment]:
    services = _admin(info).control
    return [DataverseEnvironment.of(d) for d in await services.tenant.dataverse_environments()]


@strawberry.field(name="apiKeys", description="Every API key, revoked ones included.")
async def api_keys(info: strawberry.Info) -> list[ApiKey]:
    return [ApiKey.of(k) for k in await _admin(info).control.auth.keys()]


QUERIES = [me, tenant, environments, environment, dataverse_environments, api_keys]


@strawberry.mutation(name="createUser", description="Add a person to the tenant's directory.")
async def create_user(info: strawberry.Info, email: str, name: str) -> User:
    return User.of(await _admin(info).control.tenant.create_user(email, name))


@strawberry.mutation(name="deleteUser", description="Remove a person (with roles and licences).")
async def delete_user(info: strawberry.Info, email: str) -> bool:
    await _admin(info).control.tenant.delete_user(email)
    return True


@strawberry.mutation(name="assignAdminRole")
async def assign_admin_role(info: strawberry.Info, email: str, role: AdminRole) -> User:
    return User.of(await _admin(info).control.tenant.set_role(email, role, True))


@strawberry.mutation(name="removeAdminRole")
async def remove_admin_role(info: strawberry.Info, email: str, role: AdminRole) -> User:
    return User.of(await _admin(info).control.tenant.set_role(email, role, False))


@strawberry.mutation(name="assignLicence")
async def assign_licence(info: strawberry.Info, email: str, licence: Licence) -> User:
    return User.of(await _admin(info).control.tenant.set_licence(email, licence, True))


@strawberry.mutation(name="removeLicence")
async def remove_licence(info: strawberry.Info, email: str, licence: Licence) -> User:
    return User.of(await _admin(info).control.tenant.set_licence(email, licence, False))


@strawberry.mutation(name="setDatabaseCapacity", description="The tenant's Dataverse capacity.")
async def set_database_capacity(
    info: strawberry.Info, total_gb: Annotated[float, strawberry.argument(name="totalGb")]
) -> Capacity:
    services = _admin(info).control
    if not 0 <= total_gb <= 1_000_000:
        raise BadUserInput("totalGb is between 0 and 1,000,000")
    return Capacity.of(await services.tenant.set_capacity(round(total_gb * GIB)))


@strawberry.mutation(name="setEnvironmentCreationPolicy")
async def set_policy(
    info: strawberry.Info, policy: EnvironmentCreationPolicy
) -> EnvironmentCreationPolicy:
    found = await _admin(info).control.tenant.set_policy(policy)
    return found.policy


@strawberry.mutation(name="createEnvironment", description="Record an F&O environment.")
async def create_environment(
    info: strawberry.Info,
    name: str,
    type: EnvironmentType,
    fno_store_url: Annotated[str, strawberry.argument(name="fnoStoreUrl")],
    administrator: str | None = None,
    deployment_state: Annotated[
        DeploymentState,
        strawberry.argument(name="deploymentState"),
    ] = DeploymentState.DEPLOYED,
) -> Environment:
    found = await _admin(info).control.tenant.create_environment(
        name, type, fno_store_url, administrator, deployment_state
    )
    return Environment.of(found)


@strawberry.mutation(name="updateEnvironment", description="Change what is given; keep the rest.")
async def update_environment(
    info: strawberry.Info,
    name: str,
    deployment_state: Annotated[
        DeploymentState | None,
        strawberry.argument(name="deploymentState"),
    ] = None,
    administrator: str | None = None,
    fno_store_url: Annotated[str | None, strawberry.argument(name="fnoStoreUrl")] = None,
) -> Environment:
    found = await _admin(info).control.tenant.update_environment(
        name, deployment_state=deployment_state, administrator=administrator, fno_url=fno_store_url
    )
    return Environment.of(found)


@strawberry.mutation(
    name="registerDataverseEnvironment",
    description="Record an existing Dataverse environment, so setup can link it.",
)
async def register_dataverse_environment(
    info: strawberry.Info, name: str, url: str
) -> DataverseEnvironment:
    found = await _admin(info).control.tenant.register_dataverse_environment(name, url)
    return DataverseEnvironment.of(found)


@strawberry.mutation(
    name="createApiKey", description="A new API key; its secret is in the answer, once."
)
async def create_api_key(
    info: strawberry.Info,
    subject: str,
    roles: list[Role],
    companies: list[str] | None = None,
    description: str = "",
) -> NewApiKey:
    key, secret = await _admin(info).control.auth.create_key(
        subject, list(roles), companies, description
    )
    return NewApiKey(key=secret, api_key=ApiKey.of(key))


@strawberry.mutation(name="revokeApiKey", description="The key stops working at once.")
async def revoke_api_key(info: strawberry.Info, id: str) -> ApiKey:
    return ApiKey.of(await _admin(info).control.auth.revoke_key(id))


MUTATIONS = [
    create_user,
    delete_user,
    assign_admin_role,
    remove_admin_role,
    assign_licence,
    remove_licence,
    set_database_capacity,
    set_policy,
    create_environment,
    update_environment,
    register_dataverse_environment,
    create_api_key,
    revoke_api_key,
]
