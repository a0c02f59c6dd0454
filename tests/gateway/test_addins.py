"""Add-ins and the dual-write application: install, failure, retry, uninstall."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datasources.dataverse import store as dataverse
from gateway.kernel.dual_write_maps import OUT_OF_THE_BOX_MAPS
from tests.conftest import Gateway
from tests.gateway.test_setup import (
    admin,
    dataverse_url,
    new_environment,
    read_store,
    setup,
    status,
    step,
)

INSTALLATION = "addIn state parameters error availableActions"
INVOICING = {
    "entraApplicationId": "091c98b0-a1c9-4b02-b62c-7753395ccabe",
    "entraTenantId": "6f0c4e2a-3b1d-4c5e-9a7f-2d8b1e0c3a55",
}


def install(gw: Gateway, env: str, add_in: str, parameters: Any = None) -> dict[str, Any]:
    return gw.query(
        "mutation($e: String!, $a: String!, $p: JSON) { installAddIn(environment: $e, "
        f"addIn: $a, parameters: $p, acceptTerms: true) {{ {INSTALLATION} }} }}",
        {"e": env, "a": add_in, "p": parameters},
        token=admin(gw),
    )


def again(gw: Gateway, verb: str, env: str, add_in: str) -> dict[str, Any]:
    return gw.query(
        f"mutation($e: String!, $a: String!) {{ {verb}(environment: $e, addIn: $a) "
        f"{{ {INSTALLATION} }} }}",
        {"e": env, "a": add_in},
        token=admin(gw),
    )


def run_install(gw: Gateway, env: str, add_in: str) -> dict[str, Any]:
    """Run the install (or uninstall) job's step and return the installations."""
    gw.run(gw.runtime.services.add_ins.step(f"{env}/{add_in}"))
    found = gw.data(
        f"query($e: String!) {{ addInInstallations(environment: $e) {{ {INSTALLATION} }} }}",
        {"e": env},
    )["addInInstallations"]
    return {i["addIn"]: i for i in found}


def linked_environment(gw: Gateway) -> str:
    env = new_environment(gw)
    assert "errors" not in setup(gw, env)
    while step(gw, env):
        pass
    assert status(gw, env)["state"] == "COMPLETED"
    return env


def test_add_in_install_failure_retry_uninstall(control_plane: Callable[..., Gateway]) -> None:
    gw = control_plane(run_jobs=False)
    catalog = gw.data("{ addIns { name needsDualWrite parameters { name fixed } } }")["addIns"]
    assert {a["name"] for a in catalog} >= {
        "PlanningOptimization",
        "InventoryVisibility",
        "ExportToDataLake",
        "FinanceInsights",
        "ElectronicInvoicing",
    }
    unlinked = new_environment(gw)
    refused = install(gw, unlinked, "ElectronicInvoicing", INVOICING)["errors"][0]
    assert refused["extensions"]["code"] == "PREREQUISITE_FAILED"
    assert "setupPowerPlatformIntegration" in refused["message"]

    env = linked_environment(gw)
    bad = install(gw, env, "ElectronicInvoicing", {"entraApplicationId": "nope"})["errors"][0]
    assert bad["extensions"]["code"] == "BAD_USER_INPUT"
    assert "GUID" in bad["message"] and "entraTenantId" in bad["message"]
    no_terms = gw.query(
        'mutation($e: String!) { installAddIn(environment: $e, addIn: "PlanningOptimization", '
        "acceptTerms: false) { state } }",
        {"e": env},
        token=admin(gw),
    )["errors"][0]
    assert no_terms["extensions"]["code"] == "BAD_USER_INPUT" and "terms" in no_terms["message"]

    started = install(gw, env, "ElectronicInvoicing", INVOICING)["data"]["installAddIn"]
    assert started["state"] == "INSTALLING" and started["availableActions"] == []
    assert (
        install(gw, env, "ElectronicInvoicing", INVOICING)["errors"][0]["extensions"]["code"]
        == "CONFLICT"
    )
    installed = run_install(gw, env, "ElectronicInvoicing")["ElectronicInvoicing"]
    assert installed["state"] == "INSTALLED" and installed["parameters"] == INVOICING
    assert installed["availableActions"] == ["UNINSTALL"]
    url = dataverse_url(gw, env)

    async def parameters(conn: Any) -> Any:
        return await dataverse.add_in_parameters(conn, "ElectronicInvoicing")

    assert read_store(gw, url, parameters) == INVOICING  # kept in the Dataverse store

    # capacity runs out between the request and the install: it fails, saying why
    assert "errors" not in install(gw, env, "PlanningOptimization")
    gw.data("mutation { setDatabaseCapacity(totalGb: 0.5) { totalBytes } }", token=admin(gw))
    failed = run_install(gw, env, "PlanningOptimization")["PlanningOptimization"]
    assert failed["state"] == "FAILED" and "setDatabaseCapacity" in failed["error"]
    assert failed["availableActions"] == ["RETRY", "UNINSTALL"]
    assert status(gw, env)["state"] == "COMPLETED"  # the integration itself is unharmed
    still = again(gw, "retryAddIn", env, "PlanningOptimization")["errors"][0]
    assert still["extensions"]["code"] == "PREREQUISITE_FAILED"
    gw.data("mutation { setDatabaseCapacity(totalGb: 10) { totalBytes } }", token=admin(gw))
    retried = again(gw, "retryAddIn", env, "PlanningOptimization")["data"]["retryAddIn"]
    assert retried["state"] == "INSTALLING" and retried["error"] is None
    assert run_install(gw, env, "PlanningOptimization")["PlanningOptimization"]["state"] == (
        "INSTALLED"
    )

    leaving = again(gw, "uninstallAddIn", env, "ElectronicInvoicing")["data"]["uninstallAddIn"]
    assert leaving["state"] == "UNINSTALLING"
    assert "ElectronicInvoicing" not in run_install(gw, env, "ElectronicInvoicing")
    assert read_store(gw, url, parameters) is None
    gone = again(gw, "uninstallAddIn", env, "ElectronicInvoicing")["errors"][0]
    assert gone["extensions"]["code"] == "NOT_FOUND"


def test_dual_write_application(control_plane: Callable[..., Gateway]) -> None:
    gw = control_plane(run_jobs=False)
    env = linked_environment(gw)
    needs = install(gw, env, "FinanceInsights")["errors"][0]
    assert needs["extensions"]["code"] == "PREREQUISITE_FAILED"
    assert "installDualWriteApplication" in needs["message"]
    started = gw.query(
        "mutation($e: String!) { installDualWriteApplication(environment: $e) "
        f"{{ {INSTALLATION} }} }}",
        {"e": env},
        token=admin(gw),
    )["data"]["installDualWriteApplication"]
    assert started["state"] == "INSTALLING"
    assert "DUAL_WRITE_APPLICATION" in status(gw, env)["availableActions"]
    installed = run_install(gw, env, "DualWriteApplication")["DualWriteApplication"]
    assert installed["state"] == "INSTALLED"
    assert status(gw, env)["availableActions"] == ["INSTALL_ADD_IN", "UNLINK"]
    maps = read_store(gw, dataverse_url(gw, env), dataverse.map_definitions)
    assert sorted(m["name"] for m in maps) == sorted(m["name"] for m in OUT_OF_THE_BOX_MAPS)
    assert "errors" not in install(gw, env, "FinanceInsights")
    assert run_install(gw, env, "FinanceInsights")["FinanceInsights"]["state"] == "INSTALLED"


def test_add_ins_install_only_in_sandbox_and_production(
    control_plane: Callable[..., Gateway],
) -> None:
    gw = control_plane(run_jobs=False)
    dev = new_environment(gw, kind="CLOUD_HOSTED_DEVELOPMENT")
    refused = install(gw, dev, "PlanningOptimization")["errors"][0]
    assert refused["extensions"]["code"] == "BAD_USER_INPUT"
    assert "installs only in production, sandbox environments" in refused["message"]
    unknown = install(gw, dev, "Teleportation")["errors"][0]
    assert unknown["extensions"]["code"] == "BAD_USER_INPUT" and "known:" in unknown["message"]
