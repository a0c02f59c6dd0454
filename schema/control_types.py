"""GraphQL types of the control plane: tenant, environments, setup, add-ins, keys."""

from __future__ import annotations

import datetime as dt
from typing import cast

import strawberry
from strawberry.scalars import JSON

from gateway import auth, tenant
from gateway.auth import Role
from gateway.kernel import addins
from gateway.kernel.addins import InstallAction, InstallState, ParameterType
from gateway.kernel.setup import Action as IntegrationAction
from gateway.kernel.setup import SetupState, Template
from gateway.kernel.setup import Stage as SetupStage
from gateway.kernel.tenant import (
    GIB,
    AdminRole,
    DeploymentState,
    EnvironmentCreationPolicy,
    EnvironmentType,
    Licence,
)
from gateway.setup import status

# The kernel's enums, registered as GraphQL enums (the classes themselves are used).
strawberry.enum(AdminRole, description="A directory admin role.")
strawberry.enum(Licence, description="A licence granting use of F&O.")
strawberry.enum(EnvironmentCreationPolicy, description="Who may create production environments.")
strawberry.enum(EnvironmentType)
strawberry.enum(DeploymentState)
strawberry.enum(Template, description="What setup installs in Dataverse.")
strawberry.enum(SetupStage, name="SetupStage")
strawberry.enum(SetupState)
strawberry.enum(IntegrationAction, name="IntegrationAction", description="A portal's buttons.")
strawberry.enum(InstallState, name="AddInState")
strawberry.enum(InstallAction, name="AddInAction")
strawberry.enum(ParameterType, name="AddInParameterType")
strawberry.enum(Role, name="GatewayRole", description="A role in this gateway.")


@strawberry.type(description="A person in the tenant's directory.")
class User:
    email: str
    name: str
    roles: list[AdminRole]
    licences: list[Licence]

    @staticmethod
    def of(user: tenant.User) -> User:
        return User(
            email=user.email,
            name=user.name,
            roles=sorted(user.roles),
            licences=sorted(user.licences),
        )


@strawberry.type(
    description="Dataverse database capacity. Used: what the Dataverse stores "
    "take on disk plus what each reserved."
)
class Capacity:
    total_bytes: float = strawberry.field(name="totalBytes")
    used_bytes: float = strawberry.field(name="usedBytes")
    available_bytes: float = strawberry.field(name="availableBytes")

    @strawberry.field(name="availableGb")
    def available_gb(self) -> float:
        return round(float(self.available_bytes) / GIB, 3)

    @staticmethod
    def of(capacity: tenant.Capacity) -> Capacity:
        return Capacity(
            total_bytes=capacity.total_bytes,
            used_bytes=capacity.used_bytes,
            available_bytes=capacity.available_bytes,
        )


@strawberry.type(description="An F&O environment.")
class Environment:
    name: str
    type: EnvironmentType
    deployment_state: DeploymentState = strawberry.field(name="deploymentState")
    administrator: str | None = strawberry.field(
        description="The environment administrator's email."
    )
    fno_store_url: str = strawberry.field(name="fnoStoreUrl", description="Password hidden.")
    created_at: dt.datetime = strawberry.field(name="createdAt")

    @staticmethod
    def of(env: tenant.Environment) -> Environment:
        return Environment(
            name=env.name,
            type=env.type,
            deployment_state=env.deployment_state,
            administrator=env.administrator,
            fno_store_url=env.display_url,
            created_at=env.created_at,
        )


@strawberry.type(description="A Dataverse environment known to the tenant.")
class DataverseEnvironment:
    name: str
    url: str = strawberry.field(description="Its store, password hidden.")
    reserved_bytes: float = strawberry.field(name="reservedBytes")
    managed: bool = strawberry.field(description="Created by setup (so unlink may remove it).")
    created_at: dt.datetime = strawberry.field(name="createdAt")

    @staticmethod
    def of(env: tenant.DataverseEnvironment) -> DataverseEnvironment:
        return DataverseEnvironment(
            name=env.name,
            url=env.display_url,
            reserved_bytes=env.reserved_bytes,
            managed=env.managed,
            created_at=env.created_at,
        )


@strawberry.type(description="The tenant: directory, capacity and governance policy.")
class Tenant:
    name: str
    tenant_id: str = strawberry.field(name="tenantId")
    policy: EnvironmentCreationPolicy
    capacity: Capacity
    users: list[User]


@strawberry.type(description="One prerequisite of the integration, and how to fix it.")
class PrerequisiteCheck:
    name: str
    passed: bool
    message: str


@strawberry.type(description="A parameter an add-in asks for.")
class AddInParameter:
    name: str
    type: ParameterType
    label: str
    required: bool
    default: JSON | None
    choices: list[str]
    fixed: str | None = strawberry.field(description="The only value accepted, if any.")


@strawberry.type(description="An add-in that can be installed in an environment.")
class AddIn:
    name: str
    title: str
    description: str
    parameters: list[AddInParameter]
    environment_types: list[EnvironmentType] = strawberry.field(name="environmentTypes")
    needs_dual_write: bool = strawberry.field(name="needsDualWrite")

    @staticmethod
    def of(add_in: addins.AddIn) -> AddIn:
        return AddIn(
            name=add_in.name,
            title=add_in.title,
            description=add_in.description,
            parameters=[
                AddInParameter(
                    name=p.name,
                    type=p.type,
                    label=p.label,
                    required=p.required,
                    default=p.default,
                    choices=list(p.choices),
                    fixed=p.fixed,
                )
                for p in add_in.parameters
            ],
            environment_types=sorted(add_in.environment_types),
            needs_dual_write=add_in.needs_dual_write,
        )


@strawberry.type(description="An add-in in an environment, and where its install stands.")
class AddInInstallation:
    add_in: str = strawberry.field(name="addIn")
    state: InstallState
    parameters: JSON
    error: str | None
    updated_at: dt.datetime = strawberry.field(name="updatedAt")
    installed_at: dt.datetime | None = strawberry.field(name="installedAt")
    available_actions: list[InstallAction] = strawberry.field(name="availableActions")

    @staticmethod
    def of(found: status.AddInInstallation) -> AddInInstallation:
        return AddInInstallation(
            add_in=found.add_in,
            state=found.state,
            parameters=cast(JSON, found.parameters),
            error=found.error,
            updated_at=found.updated_at,
            installed_at=found.installed_at,
            available_actions=found.available_actions,
        )


@strawberry.type(description="Where the Power Platform integration of an environment stands.")
class IntegrationStatus:
    environment: str
    state: SetupState
    stage: SetupStage | None
    progress: int = strawberry.field(description="Percent of the stages done.")
    message: str = strawberry.field(description="The status line, as a portal shows it.")
    error: str | None
    template: Template | None
    dataverse_environment: str | None = strawberry.field(name="dataverseEnvironment")
    started_at: dt.datetime | None = strawberry.field(name="startedAt")
    updated_at: dt.datetime | None = strawberry.field(name="updatedAt")
    completed_at: dt.datetime | None = strawberry.field(name="completedAt")
    available_actions: list[IntegrationAction] = strawberry.field(name="availableActions")
    add_ins: list[AddInInstallation] = strawberry.field(name="addIns")
    cursor: str = strawberry.field(description="Resume the status stream after this change.")

    @staticmethod
    def of(found: status.IntegrationStatus) -> IntegrationStatus:
        return IntegrationStatus(
            environment=found.environment,
            state=found.state,
            stage=found.stage,
            progress=found.progress,
            message=found.message,
            error=found.error,
            template=found.template,
            dataverse_environment=found.dataverse_environment,
            started_at=found.started_at,
            updated_at=found.updated_at,
            completed_at=found.completed_at,
            available_actions=found.available_actions,
            add_ins=[AddInInstallation.of(a) for a in found.add_ins],
            cursor=found.cursor,
        )


@strawberry.type(description="An API key (its secret is shown only when it is created).")
class ApiKey:
    id: str
    subject: str
    roles: list[Role]
    companies: list[str] | None = strawberry.field(description="Legal entities; null: all.")
    description: str
    created_at: dt.datetime = strawberry.field(name="createdAt")
    revoked_at: dt.datetime | None = strawberry.field(name="revokedAt")

    @staticmethod
    def of(key: auth.ApiKey) -> ApiKey:
        return ApiKey(
            id=key.id,
            subject=key.subject,
            roles=sorted(key.roles),
            companies=sorted(c.upper() for c in key.companies)
            if key.companies is not None
            else None,
            description=key.description,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


@strawberry.type(description="A new API key: keep `key` now, it is not shown again.")
class NewApiKey:
    key: str
    api_key: ApiKey = strawberry.field(name="apiKey")


@strawberry.type(description="Who the gateway takes the caller to be.")
class Me:
    subject: str
    roles: list[Role]
    companies: list[str] | None
    anonymous: bool
