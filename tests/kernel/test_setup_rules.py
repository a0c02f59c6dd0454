"""The integration's rules: each prerequisite, the portal's actions, add-in parameters."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.kernel.addins import (
    CATALOG,
    InstallAction,
    InstallState,
    install_actions,
    validate_parameters,
)
from gateway.kernel.errors import BadUserInput
from gateway.kernel.setup import (
    Action,
    Administrator,
    SetupFacts,
    SetupState,
    Stage,
    available_actions,
    check_prerequisites,
    failing,
    next_stage,
    progress,
    status_message,
)
from gateway.kernel.tenant import (
    GIB,
    AdminRole,
    DeploymentState,
    EnvironmentCreationPolicy,
    EnvironmentType,
    Licence,
)

ADMIN = Administrator(
    "admin@contoso.com",
    "Contoso Admin",
    frozenset({Licence.FINANCE}),
    frozenset({AdminRole.POWER_PLATFORM_ADMIN}),
)
READY = SetupFacts(
    environment="sandbox",
    environment_type=EnvironmentType.SANDBOX,
    deployment_state=DeploymentState.DEPLOYED,
    administrator_email=ADMIN.email,
    administrator=ADMIN,
    policy=EnvironmentCreationPolicy.ADMINS_ONLY,
    available_bytes=2 * GIB,
)

# Each change breaks exactly one prerequisite; the message says how to fix it.
BROKEN = {
    "CAPACITY": ({"available_bytes": GIB - 1}, "setDatabaseCapacity"),
    "ENVIRONMENT_TYPE": (
        {"environment_type": EnvironmentType.CLOUD_HOSTED_DEVELOPMENT},
        "sandbox or production",
    ),
    "ENVIRONMENT_DEPLOYED": ({"deployment_state": DeploymentState.DEPLOYING}, "deploy it"),
    "ADMINISTRATOR_IDENTIFIED": ({"administrator": None}, "createUser"),
    "ADMINISTRATOR_LICENSED": (
        {"administrator": dataclasses.replace(ADMIN, licences=frozenset())},
        "assignLicence",
    ),
    "ADMIN_ROLE": (
        {"administrator": dataclasses.replace(ADMIN, roles=frozenset())},
        "assignAdminRole",
    ),
}


def test_all_pass_when_ready() -> None:
    checks = check_prerequisites(READY)
    assert failing(checks) == []
    assert {c.name for c in checks} == set(BROKEN)


@pytest.mark.parametrize("name", BROKEN)
def test_each_prerequisite_fails_alone(name: str) -> None:
    change, fix = BROKEN[name]
    failed = failing(check_prerequisites(dataclasses.replace(READY, **change)))
    assert failed[0].name == name
    assert fix in failed[0].message
    # an unknown administrator's licence and roles cannot pass; they say why
    assert all("until the environment administrator is identified" in c.message for c in failed[1:])
    assert len(failed) == (3 if name == "ADMINISTRATOR_IDENTIFIED" else 1)


def test_admin_role_is_only_asked_for_when_the_policy_restricts() -> None:
    everyone = dataclasses.replace(
        READY,
        policy=EnvironmentCreationPolicy.EVERYONE,
        administrator=dataclasses.replace(ADMIN, roles=frozenset()),
    )
    assert "ADMIN_ROLE" not in {c.name for c in check_prerequisites(everyone)}


def test_stages_progress_and_messages() -> None:
    assert next_stage(Stage.VALIDATE) is Stage.CREATE_DATAVERSE_ENVIRONMENT
    assert next_stage(Stage.LINK_ENVIRONMENTS) is Stage.COMPLETED
    assert progress(Stage.VALIDATE) == 0 and progress(Stage.COMPLETED) == 100
    assert status_message(SetupState.IN_PROGRESS, Stage.VALIDATE, None) == (
        "Environment setup is in progress"
    )
    assert status_message(SetupState.COMPLETED, Stage.COMPLETED, None) == (
        "Setup completed successfully"
    )
    failed = status_message(SetupState.FAILED, Stage.LINK_ENVIRONMENTS, "the store is gone.")
    assert "link the environments" in failed and "the store is gone." in failed
    assert "Resume" in failed


def test_available_actions_are_the_portals_buttons() -> None:
    assert available_actions(SetupState.NOT_LINKED, False) == [Action.SETUP]
    assert available_actions(SetupState.IN_PROGRESS, False) == []
    assert available_actions(SetupState.FAILED, False) == [Action.RESUME, Action.UNLINK]
    assert available_actions(SetupState.COMPLETED, False) == [
        Action.INSTALL_ADD_IN,
        Action.DUAL_WRITE_APPLICATION,
        Action.UNLINK,
    ]
    assert Action.DUAL_WRITE_APPLICATION not in available_actions(SetupState.COMPLETED, True)
    assert install_actions(InstallState.FAILED) == [InstallAction.RETRY, InstallAction.UNINSTALL]
    assert install_actions(InstallState.INSTALLING) == []


def test_add_in_parameters_are_checked_against_the_add_in() -> None:
    invoicing = CATALOG["ElectronicInvoicing"]
    good = {
        "entraApplicationId": "091c98b0-a1c9-4b02-b62c-7753395ccabe",
        "entraTenantId": "6f0c4e2a-3b1d-4c5e-9a7f-2d8b1e0c3a55",
    }
    assert validate_parameters(invoicing, good) == good
    with pytest.raises(BadUserInput) as bad:
        validate_parameters(
            invoicing, {"entraApplicationId": "00000000-0000-0000-0000-000000000000", "x": 1}
        )
    problems = bad.value.details["problems"]
    assert isinstance(problems, list) and len(problems) == 3  # unknown, fixed id, missing tenant
    assert "has no parameter 'x'" in bad.value.message
    assert "091c98b0" in bad.value.message and "entraTenantId" in bad.value.message
    planning = CATALOG["PlanningOptimization"]
    assert validate_parameters(planning, None) == {"region": "UnitedStates"}
    with pytest.raises(BadUserInput, match="one of"):
        validate_parameters(planning, {"region": "Mars"})
    lake = CATALOG["ExportToDataLake"]
    with pytest.raises(BadUserInput, match="https://"):
        validate_parameters(lake, {**good, "storageAccount": "ftp://x", "keyVault": "https://k"})
