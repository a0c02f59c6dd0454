"""The Power Platform integration: its prerequisites, stages, states and the actions a
portal offers in each. Pure: the setup service does the I/O these rules decide."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from gateway.kernel.tenant import (
    GIB,
    AdminRole,
    DeploymentState,
    EnvironmentCreationPolicy,
    EnvironmentType,
    Licence,
)

DATAVERSE_RESERVATION = GIB
"""Capacity a Dataverse environment reserves when it is created (and needs to be free)."""


class Template(StrEnum):
    """What the new Dataverse environment gets installed (a linked existing one: STANDARD)."""

    STANDARD = "STANDARD"
    STANDARD_WITH_DUAL_WRITE = "STANDARD_WITH_DUAL_WRITE"


PLATFORM_COMPONENTS: dict[Template, tuple[str, ...]] = {
    Template.STANDARD: (
        "MicrosoftOperationsVEAnchor",
        "DualWriteCoreAnchor",
        "MsDynCE_CRMHub",
        "MsDyn_FnOIntegrationMDLApp_Anchor",
    ),
}
PLATFORM_COMPONENTS[Template.STANDARD_WITH_DUAL_WRITE] = (
    *PLATFORM_COMPONENTS[Template.STANDARD],
    "MsDyn_DualWriteAppCoreAnchor",
)


class Stage(StrEnum):
    VALIDATE = "VALIDATE"
    CREATE_DATAVERSE_ENVIRONMENT = "CREATE_DATAVERSE_ENVIRONMENT"
    INSTALL_PLATFORM_COMPONENTS = "INSTALL_PLATFORM_COMPONENTS"
    LINK_ENVIRONMENTS = "LINK_ENVIRONMENTS"
    COMPLETED = "COMPLETED"


STAGES = tuple(Stage)
STAGE_LABELS = {
    Stage.VALIDATE: "validate the prerequisites",
    Stage.CREATE_DATAVERSE_ENVIRONMENT: "create the Dataverse environment",
    Stage.INSTALL_PLATFORM_COMPONENTS: "install the dual-write platform components",
    Stage.LINK_ENVIRONMENTS: "link the environments",
    Stage.COMPLETED: "completed",
}


def next_stage(stage: Stage) -> Stage:
    return STAGES[min(STAGES.index(stage) + 1, len(STAGES) - 1)]


def progress(stage: Stage) -> int:
    """Percent done when `stage` starts."""
    return round(100 * STAGES.index(stage) / (len(STAGES) - 1))


class SetupState(StrEnum):
    NOT_LINKED = "NOT_LINKED"
    IN_PROGRESS = "IN_PROGRESS"
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"


class Action(StrEnum):
    """What a portal offers for an environment: the buttons it shows."""

    SETUP = "SETUP"
    RESUME = "RESUME"
    UNLINK = "UNLINK"
    INSTALL_ADD_IN = "INSTALL_ADD_IN"
    DUAL_WRITE_APPLICATION = "DUAL_WRITE_APPLICATION"


def status_message(state: SetupState, stage: Stage, error: str | None) -> str:
    """The status line as the portal words it."""
    if state is SetupState.IN_PROGRESS:
        return "Environment setup is in progress"
    if state is SetupState.COMPLETED:
        return "Setup completed successfully"
    if state is SetupState.FAILED:
        reason = (error or "unknown cause").rstrip(".")
        return (
            f"Setup failed while trying to {STAGE_LABELS[stage]}: {reason}. "
            "Fix the cause, then choose Resume."
        )
    return "Not linked to a Power Platform environment"


def available_actions(state: SetupState, dual_write_application_installed: bool) -> list[Action]:
    if state is SetupState.NOT_LINKED:
        return [Action.SETUP]
    if state is SetupState.FAILED:
        return [Action.RESUME, Action.UNLINK]
    if state is SetupState.COMPLETED:
        actions = [Action.INSTALL_ADD_IN]
        if not dual_write_application_installed:
            actions.append(Action.DUAL_WRITE_APPLICATION)
        return [*actions, Action.UNLINK]
    return []


@dataclass(frozen=True)
class Administrator:
    email: str
    name: str
    licences: frozenset[Licence]
    roles: frozenset[AdminRole]


@dataclass(frozen=True)
class SetupFacts:
    """What the prerequisites are checked against, read at one moment."""

    environment: str
    environment_type: EnvironmentType
    deployment_state: DeploymentState
    administrator_email: str | None
    administrator: Administrator | None  # None: the email names nobody in the tenant
    policy: EnvironmentCreationPolicy
    available_bytes: int


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    message: str


_UNIDENTIFIED = "cannot be checked until the environment administrator is identified"


def check_prerequisites(facts: SetupFacts) -> list[Check]:
    """Every prerequisite, passed or not, each with what to do when it fails."""
    admin = facts.administrator
    gb = facts.available_bytes / GIB
    checks = [
        Check(
            "CAPACITY",
            facts.available_bytes >= DATAVERSE_RESERVATION,
            f"{gb:.2f} GB of Dataverse database capacity is available"
            if facts.available_bytes >= DATAVERSE_RESERVATION
            else f"only {gb:.2f} GB of Dataverse database capacity is available; at least "
            f"{DATAVERSE_RESERVATION / GIB:.0f} GB is needed: free some or add capacity "
            "(setDatabaseCapacity)",
        ),
        Check(
            "ENVIRONMENT_TYPE",
            facts.environment_type is not EnvironmentType.CLOUD_HOSTED_DEVELOPMENT,
            f"{facts.environment} is a {facts.environment_type.value.lower()} environment"
            if facts.environment_type is not EnvironmentType.CLOUD_HOSTED_DEVELOPMENT
            else f"{facts.environment} is a cloud-hosted development environment: those are "
            "linked only when they are deployed; use a sandbox or production environment",
        ),
        Check(
            "ENVIRONMENT_DEPLOYED",
            facts.deployment_state is DeploymentState.DEPLOYED,
            f"{facts.environment} is deployed"
            if facts.deployment_state is DeploymentState.DEPLOYED
            else f"{facts.environment} is {facts.deployment_state.value.lower()}, not deployed: "
            "deploy it (updateEnvironment deploymentState: DEPLOYED), then try again",
        ),
        Check(
            "ADMINISTRATOR_IDENTIFIED",
            admin is not None,
            f"the environment administrator is {admin.name} <{admin.email}>"
            if admin is not None
            else (
                f"the environment administrator {facts.administrator_email} is not a user of "
                "the tenant: add the user (createUser) or name another administrator"
                if facts.administrator_email
                else "the environment has no administrator: name one (updateEnvironment "
                "administrator:)"
            ),
        ),
        Check(
            "ADMINISTRATOR_LICENSED",
            admin is not None and bool(admin.licences),
            f"{admin.email} holds {', '.join(sorted(admin.licences))}"
            if admin is not None and admin.licences
            else _UNIDENTIFIED
            if admin is None
            else "the environment administrator needs a Dynamics 365 Unified Operations Plan "
            "or an app licence (Finance, Supply Chain Management, Commerce, Project Operations, "
            "Human Resources): assign one (assignLicence)",
        ),
    ]
    if facts.policy is EnvironmentCreationPolicy.ADMINS_ONLY:
        has_role = admin is not None and bool(admin.roles)
        checks.append(
            Check(
                "ADMIN_ROLE",
                has_role,
                f"{facts.administrator_email} holds {', '.join(sorted(admin.roles))}"
                if admin is not None and has_role
                else _UNIDENTIFIED
                if admin is None
                else "only admins may create environments in this tenant: give the environment "
                "administrator the Dynamics 365 admin or Power Platform admin role "
                "(assignAdminRole), or let everyone create environments "
                "(setEnvironmentCreationPolicy)",
            )
        )
    return checks


def failing(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if not c.passed]
