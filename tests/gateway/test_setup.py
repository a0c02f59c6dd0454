"""Linking an F&O environment to Dataverse through GraphQL, on SQLite and PostgreSQL:
prerequisites, setup end to end, a failure at each stage and resume, linking an
existing environment, and unlink."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from datasources.dataverse import store as dataverse
from datasources.sql.integration import dataverse_link_of
from datasources.sql.stores import connect
from gateway.auth import Role
from gateway.kernel.setup import PLATFORM_COMPONENTS, Template
from tests.conftest import Gateway, environment_name

ADMIN = "admin@contoso.com"
STATUS = "state stage progress message error template dataverseEnvironment availableActions cursor"


def admin(gw: Gateway) -> str:
    """The demo tenant's admin: a gateway admin and the environments' administrator."""
    return gw.token(Role.ADMIN, sub=ADMIN)


def new_environment(
    gw: Gateway, fno_url: str | None = None, kind: str = "SANDBOX", **fields: str
) -> str:
    name = environment_name()
    extra = "".join(f" {k}: {v}" for k, v in fields.items())
    gw.data(
        f"mutation($n: String!, $u: String!) {{ createEnvironment(name: $n, type: {kind}, "
        f'fnoStoreUrl: $u, administrator: "{ADMIN}"{extra}) {{ name }} }}',
        {"n": name, "u": fno_url or gw.fno_url},
        token=admin(gw),
    )
    return name


def status(gw: Gateway, env: str) -> dict[str, Any]:
    query = f"query($e: String!) {{ integrationStatus(environment: $e) {{ {STATUS} }} }}"
    found: dict[str, Any] = gw.data(query, {"e": env})["integrationStatus"]
    return found


def setup(gw: Gateway, env: str, extra: str = "", token: str | None = None) -> dict[str, Any]:
    return gw.query(
        "mutation($e: String!) { setupPowerPlatformIntegration(environment: $e, acceptTerms: "
        f"true{extra}) {{ {STATUS} }} }}",
        {"e": env},
        token=token or admin(gw),
    )


def mutate(gw: Gateway, call: str, env: str, fields: str = "state") -> dict[str, Any]:
    return gw.query(f"mutation($e: String!) {{ {call} {{ {fields} }} }}", {"e": env}, admin(gw))


def step(gw: Gateway, env: str) -> bool:
    more: bool = gw.run(gw.runtime.services.integrations.step(env))
    return more


def wait_until(gw: Gateway, env: str, state: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = status(gw, env)
        if found["state"] == state:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def dataverse_url(gw: Gateway, name: str) -> str:
    found = gw.run(gw.runtime.services.tenant.dataverse_environment(name))
    assert found is not None
    url: str = found.url
    return url


def read_store(gw: Gateway, url: str, read: Callable[[Any], Any]) -> Any:
    async def run() -> Any:
        async with connect(url, write=False) as conn:
            return await read(conn)

    return gw.run(run())


def store_exists(gw: Gateway, url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        from pathlib import Path

        return Path(str(parsed.database)).exists()
    from tests.conftest import _pg_names

    return _pg_names(gw.runtime.settings.dataverse_home(), str(parsed.database)) != []


def capacity(gw: Gateway) -> dict[str, float]:
    query = "{ tenant { capacity { totalBytes usedBytes availableBytes } } }"
    found: dict[str, float] = gw.data(query, token=admin(gw))["tenant"]["capacity"]
    return found


def test_setup_end_to_end_then_unlink(control_plane: Callable[..., Gateway]) -> None:
    gw = control_plane()
    env = new_environment(gw)
    checks = gw.data(
        "query($e: String!) { integrationPrerequisites(environment: $e) { name passed } }",
        {"e": env},
    )["integrationPrerequisites"]
    assert all(c["passed"] for c in checks) and len(checks) == 5
    before = capacity(gw)
    assert status(gw, env)["availableActions"] == ["SETUP"]

    started = setup(gw, env, ", template: STANDARD_WITH_DUAL_WRITE")["data"]
    started = started["setupPowerPlatformIntegration"]
    assert started["state"] == "IN_PROGRESS"
    assert started["message"] == "Environment setup is in progress"
    assert started["availableActions"] == []
    done = wait_until(gw, env, "COMPLETED")
    assert done["message"] == "Setup completed successfully"
    assert done["progress"] == 100 and done["stage"] == "COMPLETED" and done["error"] is None
    assert done["availableActions"] == ["INSTALL_ADD_IN", "DUAL_WRITE_APPLICATION", "UNLINK"]
    assert done["dataverseEnvironment"] == env

    # the Dataverse environment is a real store with native tables, metadata and solutions
    url = dataverse_url(gw, env)
    assert read_store(gw, url, dataverse.missing_native_tables) == []
    solutions = read_store(gw, url, dataverse.solutions)
    assert sorted(solutions) == sorted(PLATFORM_COMPONENTS[Template.STANDARD_WITH_DUAL_WRITE])
    details = read_store(gw, url, dataverse.link_details)
    assert details is not None and details["environment"] == env
    assert read_store(gw, gw.fno_url, dataverse_link_of)["environment"] == env
    listed = gw.data("{ dataverseEnvironments { name managed url } }", token=admin(gw))
    assert {"name": env, "managed": True} in [
        {k: d[k] for k in ("name", "managed")} for d in listed["dataverseEnvironments"]
    ]
    after = capacity(gw)  # 1 GB reserved plus the store's real size
    assert after["usedBytes"] > before["usedBytes"] + 1024**3

    # setting up again is refused; unlink needs the name typed exactly
    assert setup(gw, env)["errors"][0]["extensions"]["code"] == "CONFLICT"
    wrong = mutate(
        gw,
        'unlinkPowerPlatformIntegration(environment: $e, confirmEnvironmentName: "nope")',
        env,
    )
    assert wrong["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "type the environment name" in wrong["errors"][0]["message"]
    unlinked = mutate(
        gw,
        "unlinkPowerPlatformIntegration(environment: $e, confirmEnvironmentName: $e, "
        "removeDataverseEnvironment: true)",
        env,
        "state availableActions",
    )["data"]["unlinkPowerPlatformIntegration"]
    assert unlinked == {"state": "NOT_LINKED", "availableActions": ["SETUP"]}
    assert not store_exists(gw, url)
    assert read_store(gw, gw.fno_url, dataverse_link_of) is None
    assert capacity(gw)["usedBytes"] == before["usedBytes"]


def test_a_failure_at_each_stage_then_resume(control_plane: Callable[..., Gateway]) -> None:
    """Stages run one at a time here (no job runner), so each cause is set up exactly
    before the stage that meets it; resume continues from the failed stage."""
    gw = control_plane(run_jobs=False)
    good_fno = gw.fno_url
    gone = (
        "sqlite:////nonexistent/fno.db"
        if gw.backend == "sqlite"
        else make_url(good_fno).set(database="no_such_store").render_as_string(False)
    )
    env = new_environment(gw, fno_url=gone)

    def point_at(url: str) -> None:
        gw.data(
            "mutation($e: String!, $u: String!) { updateEnvironment(name: $e, fnoStoreUrl: $u) "
            "{ name } }",
            {"e": env, "u": url},
            token=admin(gw),
        )

    def failed_at(stage: str, words: str) -> dict[str, Any]:
        assert step(gw, env) is False
        found = status(gw, env)
        assert (found["state"], found["stage"]) == ("FAILED", stage), found
        assert words in found["error"], found
        assert found["message"].startswith("Setup failed while trying to")
        assert found["availableActions"] == ["RESUME", "UNLINK"]
        return found

    def resume() -> dict[str, Any]:
        return mutate(gw, "resumeIntegrationSetup(environment: $e)", env, "state stage error")

    assert "errors" not in setup(gw, env)
    # 1. validate: the F&O store cannot be reached
    failed_at("VALIDATE", "F&O" if gw.backend == "sqlite" else "no_such_store")
    point_at(good_fno)
    assert resume()["data"]["resumeIntegrationSetup"]["state"] == "IN_PROGRESS"
    assert step(gw, env) is True  # validate passes now

    # 2. create the Dataverse environment: the capacity went
    gw.data("mutation { setDatabaseCapacity(totalGb: 0.5) { totalBytes } }", token=admin(gw))
    failed_at("CREATE_DATAVERSE_ENVIRONMENT", "not enough Dataverse capacity")
    refused = resume()["errors"][0]
    assert refused["extensions"]["code"] == "PREREQUISITE_FAILED"
    assert refused["extensions"]["failing"] == ["CAPACITY"]
    gw.data("mutation { setDatabaseCapacity(totalGb: 10) { totalBytes } }", token=admin(gw))
    assert resume()["data"]["resumeIntegrationSetup"]["error"] is None
    assert step(gw, env) is True

    # 3. install the platform components: the administrator's licence was removed
    licence = (
        'mutation { %s(email: "%s", licence: DYNAMICS_365_UNIFIED_OPERATIONS_PLAN) { email } }'
    )
    gw.data(licence % ("removeLicence", ADMIN), token=admin(gw))
    failed_at("INSTALL_PLATFORM_COMPONENTS", "no longer holds a licence")
    assert resume()["errors"][0]["extensions"]["failing"] == ["ADMINISTRATOR_LICENSED"]
    gw.data(licence % ("assignLicence", ADMIN), token=admin(gw))
    assert "errors" not in resume()
    assert step(gw, env) is True

    # 4. link: the F&O store went away again
    point_at(gone)
    failed_at("LINK_ENVIRONMENTS", "does not exist" if gw.backend == "sqlite" else "no_such")
    point_at(good_fno)
    assert "errors" not in resume()
    assert step(gw, env) is False
    done = status(gw, env)
    assert done["state"] == "COMPLETED" and done["message"] == "Setup completed successfully"
    # every stage that ran twice left one result
    url = dataverse_url(gw, env)
    assert len(read_store(gw, url, dataverse.solutions)) == len(
        PLATFORM_COMPONENTS[Template.STANDARD]
    )
    environments = gw.data("{ dataverseEnvironments { name } }", token=admin(gw))
    assert [d["name"] for d in environments["dataverseEnvironments"]].count(env) == 1


def test_setup_is_refused_with_every_failing_check(control_plane: Callable[..., Gateway]) -> None:
    gw = control_plane(run_jobs=False)
    env = new_environment(gw, deploymentState="DEPLOYING")
    gw.data("mutation { setDatabaseCapacity(totalGb: 0.25) { totalBytes } }", token=admin(gw))
    error = setup(gw, env)["errors"][0]
    assert error["extensions"]["code"] == "PREREQUISITE_FAILED"
    assert error["extensions"]["failing"] == ["CAPACITY", "ENVIRONMENT_DEPLOYED"]
    assert "setDatabaseCapacity" in error["message"] and "deploy it" in error["message"]
    terms = gw.query(
        'mutation { setupPowerPlatformIntegration(environment: "x", acceptTerms: false) '
        "{ state } }",
        token=admin(gw),
    )["errors"][0]
    assert terms["extensions"]["code"] == "NOT_FOUND"  # no such environment, said first
    gw.data("mutation { setDatabaseCapacity(totalGb: 10) { totalBytes } }", token=admin(gw))
    no_terms = gw.query(
        "mutation($e: String!) { setupPowerPlatformIntegration(environment: $e, "
        "acceptTerms: false) { state } }",
        {"e": env},
        token=admin(gw),
    )["errors"][0]
    assert no_terms["extensions"]["code"] == "BAD_USER_INPUT" and "terms" in no_terms["message"]
    assert status(gw, env)["state"] == "NOT_LINKED"  # nothing was started
    resume = mutate(gw, "resumeIntegrationSetup(environment: $e)", env)
    assert resume["errors"][0]["extensions"]["code"] == "CONFLICT"


PREREQUISITE_CASES: dict[str, tuple[str, str]] = {
    # check: (what breaks it, what puts it back)
    "CAPACITY": (
        "setDatabaseCapacity(totalGb: 0.5) { totalBytes }",
        "setDatabaseCapacity(totalGb: 10) { totalBytes }",
    ),
    "ENVIRONMENT_DEPLOYED": (
        "updateEnvironment(name: $e, deploymentState: STOPPED) { name }",
        "updateEnvironment(name: $e, deploymentState: DEPLOYED) { name }",
    ),
    "ADMINISTRATOR_LICENSED": (
        f'removeLicence(email: "{ADMIN}", licence: DYNAMICS_365_UNIFIED_OPERATIONS_PLAN) {{ email }}',
        f'assignLicence(email: "{ADMIN}", licence: DYNAMICS_365_UNIFIED_OPERATIONS_PLAN) {{ email }}',
    ),
    "ADMIN_ROLE": (
        "setEnvironmentCreationPolicy(policy: ADMINS_ONLY)",
        "setEnvironmentCreationPolicy(policy: EVERYONE)",
    ),
}


def test_each_prerequisite_fails_alone(control_plane: Callable[..., Gateway]) -> None:
    gw = control_plane(run_jobs=False)
    env = new_environment(gw)
    query = (
        "query($e: String!) { integrationPrerequisites(environment: $e) { name passed message } }"
    )

    def failing() -> list[str]:
        checks = gw.data(query, {"e": env})["integrationPrerequisites"]
        return [c["name"] for c in checks if not c["passed"]]

    assert failing() == []
    # a restricted policy needs an admin role, which the demo administrator has: take it away
    gw.data(
        f'mutation {{ removeAdminRole(email: "{ADMIN}", role: GLOBAL_ADMIN) {{ email }} }}',
        token=admin(gw),
    )

    def run(field: str) -> None:
        if "$e" in field:
            gw.data(f"mutation($e: String!) {{ {field} }}", {"e": env}, token=admin(gw))
        else:
            gw.data(f"mutation {{ {field} }}", token=admin(gw))

    for name, (breaks, mends) in PREREQUISITE_CASES.items():
        run(breaks)
        assert failing() == [name]
        run(mends)
        assert failing() == []
    unknown = new_environment(gw)
    gw.data(
        'mutation($e: String!) { updateEnvironment(name: $e, administrator: "nobody@x.com") '
        "{ name } }",
        {"e": unknown},
        token=admin(gw),
    )
    checks = gw.data(query, {"e": unknown})["integrationPrerequisites"]
    first = next(c for c in checks if not c["passed"])
    assert first["name"] == "ADMINISTRATOR_IDENTIFIED" and "createUser" in first["message"]
    dev = new_environment(gw, kind="CLOUD_HOSTED_DEVELOPMENT")
    checks = gw.data(query, {"e": dev})["integrationPrerequisites"]
    assert [c["name"] for c in checks if not c["passed"]] == ["ENVIRONMENT_TYPE"]


def test_an_existing_dataverse_environment_is_linked_and_kept(
    control_plane: Callable[..., Gateway],
) -> None:
    gw = control_plane()
    env = new_environment(gw)
    location = gw.runtime.services.integrations._location
    existing = environment_name()
    url: str = gw.run(location.create(existing))

    async def with_apps() -> None:
        async with connect(url, write=True) as conn:
            await dataverse.create_native_tables(conn)

    register = (
        "mutation($n: String!, $u: String!) { registerDataverseEnvironment(name: $n, url: $u) "
        "{ name managed } }"
    )
    bare = environment_name()
    bare_url: str = gw.run(location.create(bare))
    if gw.backend == "sqlite":  # a SQLite store exists once a connection made it
        read_store(gw, bare_url, lambda conn: dataverse.missing_native_tables(conn))
    gw.data(register, {"n": bare, "u": bare_url}, token=admin(gw))
    refused = setup(gw, env, f', existingDataverseEnvironment: "{bare}"')["errors"][0]
    assert refused["extensions"]["failing"] == ["DATAVERSE_ENVIRONMENT"]
    assert "not created with Dynamics 365 apps enabled" in refused["message"]

    gw.run(with_apps())
    assert gw.data(register, {"n": existing, "u": url}, token=admin(gw))[
        "registerDataverseEnvironment"
    ] == {"name": existing, "managed": False}
    started = setup(gw, env, f', existingDataverseEnvironment: "{existing}"')
    assert started["data"]["setupPowerPlatformIntegration"]["template"] == "STANDARD"
    done = wait_until(gw, env, "COMPLETED")
    assert done["dataverseEnvironment"] == existing
    assert read_store(gw, url, dataverse.link_details)["environment"] == env
    remove = mutate(
        gw,
        "unlinkPowerPlatformIntegration(environment: $e, confirmEnvironmentName: $e, "
        "removeDataverseEnvironment: true)",
        env,
    )
    assert remove["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    keep = mutate(
        gw, "unlinkPowerPlatformIntegration(environment: $e, confirmEnvironmentName: $e)", env
    )
    assert keep["data"]["unlinkPowerPlatformIntegration"]["state"] == "NOT_LINKED"
    assert store_exists(gw, url)
    assert read_store(gw, url, dataverse.link_details) is None
    # kept, it can be linked again
    again = setup(gw, env, f', existingDataverseEnvironment: "{existing}"')
    assert "errors" not in again
    assert wait_until(gw, env, "COMPLETED")["dataverseEnvironment"] == existing
