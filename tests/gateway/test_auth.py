"""Who may do what: a role matrix over every mutation and admin query, API keys, RS256
tokens, and reads limited to the legal entities a caller is allowed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth import Role
from tests.conftest import ANONYMOUS, Gateway
from tests.gateway.test_setup import ADMIN, new_environment

ENV_OPS = "env"  # the environment administrator
ADMIN_OPS = "admin"  # a gateway admin
READ_OPS = "reader"  # anyone signed in with the reader role
WRITE_OPS = "writer"  # changes F&O data through virtual entities

OPERATIONS: list[tuple[str, str, str]] = [
    # (who may, operation, selection)
    (ADMIN_OPS, "query { tenant { name } }", ""),
    (ADMIN_OPS, "query { apiKeys { id } }", ""),
    (ADMIN_OPS, "query { dataverseEnvironments { name } }", ""),
    (ADMIN_OPS, 'mutation { createUser(email: "new@contoso.com", name: "New") { email } }', ""),
    (ADMIN_OPS, 'mutation { deleteUser(email: "nobody@contoso.com") }', ""),
    (
        ADMIN_OPS,
        f'mutation {{ assignAdminRole(email: "{ADMIN}", role: GLOBAL_ADMIN) {{ email }} }}',
        "",
    ),
    (
        ADMIN_OPS,
        f'mutation {{ removeAdminRole(email: "{ADMIN}", role: DYNAMICS_365_ADMIN) {{ email }} }}',
        "",
    ),
    (
        ADMIN_OPS,
        f'mutation {{ assignLicence(email: "{ADMIN}", licence: FINANCE) {{ email }} }}',
        "",
    ),
    (
        ADMIN_OPS,
        f'mutation {{ removeLicence(email: "{ADMIN}", licence: COMMERCE) {{ email }} }}',
        "",
    ),
    (ADMIN_OPS, "mutation { setDatabaseCapacity(totalGb: 10) { totalBytes } }", ""),
    (ADMIN_OPS, "mutation { setEnvironmentCreationPolicy(policy: EVERYONE) }", ""),
    (
        ADMIN_OPS,
        'mutation { createEnvironment(name: "m", type: SANDBOX, fnoStoreUrl: "sqlite:///m.db") { name } }',
        "",
    ),
    (ADMIN_OPS, "mutation($e: String!) { updateEnvironment(name: $e) { name } }", "e"),
    (
        ADMIN_OPS,
        'mutation { registerDataverseEnvironment(name: "d", url: "sqlite:///d.db") { name } }',
        "",
    ),
    (ADMIN_OPS, 'mutation { createApiKey(subject: "bot", roles: [READER]) { key } }', ""),
    (ADMIN_OPS, 'mutation { revokeApiKey(id: "000000000000") { id } }', ""),
    (ADMIN_OPS, 'mutation { setEntityVisible(name: "VendorGroup", visible: false) { name } }', ""),
    (ADMIN_OPS, 'mutation { refreshEntity(name: "VendorGroup") { name } }', ""),
    (ADMIN_OPS, "mutation { refreshCatalog { name } }", ""),
    (
        ENV_OPS,
        "mutation($e: String!) { setupPowerPlatformIntegration(environment: $e, acceptTerms: false) { state } }",
        "e",
    ),
    (ENV_OPS, "mutation($e: String!) { resumeIntegrationSetup(environment: $e) { state } }", "e"),
    (
        ENV_OPS,
        "mutation($e: String!) { unlinkPowerPlatformIntegration(environment: $e, confirmEnvironmentName: $e) { state } }",
        "e",
    ),
    (
        ENV_OPS,
        'mutation($e: String!) { installAddIn(environment: $e, addIn: "PlanningOptimization", acceptTerms: true) { state } }',
        "e",
    ),
    (
        ENV_OPS,
        'mutation($e: String!) { retryAddIn(environment: $e, addIn: "PlanningOptimization") { state } }',
        "e",
    ),
    (
        ENV_OPS,
        'mutation($e: String!) { uninstallAddIn(environment: $e, addIn: "PlanningOptimization") { state } }',
        "e",
    ),
    (
        ENV_OPS,
        "mutation($e: String!) { installDualWriteApplication(environment: $e) { state } }",
        "e",
    ),
    (READ_OPS, "query { environments { name } }", ""),
    (READ_OPS, "query($e: String!) { integrationPrerequisites(environment: $e) { name } }", "e"),
    (READ_OPS, "query($e: String!) { integrationStatus(environment: $e) { state } }", "e"),
    (READ_OPS, "query { addIns { name } }", ""),
    (READ_OPS, "query($e: String!) { addInInstallations(environment: $e) { state } }", "e"),
    (READ_OPS, "query { entityCatalog { name } }", ""),
    (READ_OPS, '{ customersV3(company: "USMF") { totalCount } }', ""),
    (
        WRITE_OPS,
        'mutation { createCustomerGroup(input: {dataAreaId: "USMF", customerGroupId: "M1"}) { recVersion } }',
        "",
    ),
    (
        WRITE_OPS,
        'mutation { updateCustomerGroup(dataAreaId: "USMF", customerGroupId: "M1", input: {description: "m"}) { recVersion } }',
        "",
    ),
    (
        WRITE_OPS,
        'mutation { deleteCustomerGroup(dataAreaId: "USMF", customerGroupId: "M1") { version } }',
        "",
    ),
]


def test_role_matrix(control_plane: Callable[..., Gateway]) -> None:
    gw = control_plane(run_jobs=False)
    env = new_environment(gw)
    callers = {
        "anonymous": ANONYMOUS,
        "reader": gw.token(Role.READER, sub="pat@contoso.com"),
        "writer": gw.token(Role.WRITER, sub="rep@contoso.com"),
        "gateway admin": gw.token(Role.ADMIN, sub="ops@contoso.com"),
        "environment administrator": gw.token(Role.READER, sub=ADMIN),
    }
    allowed = {
        ADMIN_OPS: {"gateway admin"},
        ENV_OPS: {"environment administrator"},
        READ_OPS: {"reader", "writer", "gateway admin", "environment administrator"},
        WRITE_OPS: {"writer", "gateway admin"},
    }
    for who, operation, variables in OPERATIONS:
        for caller, token in callers.items():
            body = gw.query(operation, {"e": env} if variables else None, token=token)
            codes = [e["extensions"]["code"] for e in body.get("errors", [])]
            if caller in allowed[who]:
                assert not {"UNAUTHENTICATED", "FORBIDDEN"} & set(codes), (caller, operation, body)
            else:
                expected = "UNAUTHENTICATED" if caller == "anonymous" else "FORBIDDEN"
                assert codes == [expected], (caller, operation, body)
                assert body["errors"][0]["message"]  # says what is missing


def test_api_keys_through_graphql(control_plane: Callable[..., Gateway]) -> None:
    gw = control_plane(run_jobs=False)
    admin = gw.token(Role.ADMIN, sub=ADMIN)
    created = gw.data(
        'mutation { createApiKey(subject: "Bot@Contoso.com", roles: [READER], '
        'companies: ["usmf"], description: "nightly export") '
        "{ key apiKey { id subject roles companies revokedAt } } }",
        token=admin,
    )["createApiKey"]
    key, listed = created["key"], created["apiKey"]
    assert key.startswith("fgk_") and listed["subject"] == "bot@contoso.com"
    assert listed["roles"] == ["READER"] and listed["companies"] == ["USMF"]
    me = gw.data("{ me { subject roles companies anonymous } }", token=key)["me"]
    assert me == {
        "subject": "bot@contoso.com",
        "roles": ["READER"],
        "companies": ["USMF"],
        "anonymous": False,
    }
    keys = gw.data("{ apiKeys { id description } }", token=admin)["apiKeys"]
    assert {"id": listed["id"], "description": "nightly export"} in keys
    assert "fgk_" not in str(keys)  # secrets are never listed
    gw.data(f'mutation {{ revokeApiKey(id: "{listed["id"]}") {{ revokedAt }} }}', token=admin)
    refused = gw.error("{ me { subject } }", token=key)
    assert refused["extensions"]["code"] == "UNAUTHENTICATED" and "revoked" in refused["message"]
    forged = gw.error("{ me { subject } }", token=key[:-4] + "AAAA")
    assert forged["extensions"]["code"] == "UNAUTHENTICATED"


def test_reads_are_limited_to_the_allowed_legal_entities(
    control_plane: Callable[..., Gateway],
) -> None:
    gw = control_plane()
    usmf_only = gw.token(Role.READER, sub="pat@contoso.com", companies=["USMF"])
    query = "query($c: String) { customersV3(company: $c) { totalCount } }"
    assert gw.data(query, {"c": "USMF"}, token=usmf_only)["customersV3"]["totalCount"] > 0
    for variables, words in (({"c": "USRT"}, "may not read legal entity USRT"),):
        error = gw.error(query, variables, token=usmf_only)
        assert error["extensions"]["code"] == "FORBIDDEN" and words in error["message"]
    cross = gw.error("{ customersV3(crossCompany: true) { totalCount } }", token=usmf_only)
    assert cross["extensions"]["code"] == "FORBIDDEN" and "crossCompany" in cross["message"]
    by_key = '{ customerV3(dataAreaId: "usrt", customerAccount: "x") { customerAccount } }'
    assert gw.error(by_key, token=usmf_only)["extensions"]["code"] == "FORBIDDEN"
    mine = '{ customerV3(dataAreaId: "USMF", customerAccount: "x") { customerAccount } }'
    assert gw.data(mine, token=usmf_only) == {"customerV3": None}
    # cross-company entities (legal entities themselves) stay readable
    assert gw.data("{ legalEntities { totalCount } }", token=usmf_only)["legalEntities"]


def test_rs256_tokens_with_a_configured_public_key(control_plane: Callable[..., Gateway]) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    gw = control_plane(run_jobs=False, jwt_public_key=public.decode())
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": "svc",
        "roles": ["reader"],
        "iss": "fno-gateway",
        "exp": now + dt.timedelta(minutes=5),
    }
    token = jwt.encode(claims, private, algorithm="RS256")
    assert gw.data("{ me { subject roles } }", token=token)["me"] == {
        "subject": "svc",
        "roles": ["READER"],
    }
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = gw.error("{ me { subject } }", token=jwt.encode(claims, other, algorithm="RS256"))
    assert forged["extensions"]["code"] == "UNAUTHENTICATED"
    expired = {**claims, "exp": now - dt.timedelta(minutes=1)}
    stale = gw.error("{ me { subject } }", token=jwt.encode(expired, private, algorithm="RS256"))
    assert "expired" in stale["message"]
    none = jwt.encode(claims, None, algorithm="none")
    assert gw.error("{ me { subject } }", token=none)["extensions"]["code"] == "UNAUTHENTICATED"
