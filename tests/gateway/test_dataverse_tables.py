"""The linked Dataverse environment's tables in GraphQL: they join the schema when
setup completes, are read and written like virtual entities, and leave on unlink."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.auth import Role
from tests.conftest import Gateway
from tests.gateway.test_setup import admin, mutate, new_environment, setup, wait_until

CREATE = """
mutation($input: accountCreateInput!) {
  createAccount(input: $input) { accountid name accountnumber creditlimit statecode versionnumber }
}
"""


def test_dataverse_tables_come_and_go_with_the_link(control_plane: Callable[..., Gateway]) -> None:
    gw = control_plane()
    assert gw.error("{ accounts { totalCount } }")["extensions"]["code"] == (
        "GRAPHQL_VALIDATION_FAILED"
    )
    env = new_environment(gw)  # over this gateway's own F&O store
    assert "errors" not in setup(gw, env)
    wait_until(gw, env, "COMPLETED")
    deadline = time.monotonic() + 10
    while "errors" in (body := gw.query("{ accounts { totalCount } }")):
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    assert body["data"] == {"accounts": {"totalCount": 0}}
    companies = gw.data("{ cdm_companies { totalCount } }")["cdm_companies"]
    assert companies == {"totalCount": 0}

    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    account = {
        "accountid": "7d2f6a52-4c43-4a0e-9f0e-0b5c2b9f2b11",
        "name": "Fabrikam",
        "accountnumber": "C-1001",
        "creditlimit": "2000",
        "statecode": "Active",
    }
    created = gw.data(CREATE, {"input": account}, token=writer)["createAccount"]
    assert created["name"] == "Fabrikam" and created["versionnumber"] == 1
    missing = gw.error(CREATE, {"input": {"accountid": "x"}}, token=writer)
    assert missing["extensions"]["code"] == "BAD_USER_INPUT" and "name" in missing["message"]
    updated = gw.data(
        'mutation { updateAccount(accountid: "7d2f6a52-4c43-4a0e-9f0e-0b5c2b9f2b11", '
        'expectedVersion: 1, input: {creditlimit: "5000"}) { creditlimit versionnumber } }',
        token=writer,
    )["updateAccount"]
    assert updated["creditlimit"].startswith("5000") and updated["versionnumber"] == 2
    found = gw.data('{ accounts(where: {name: {eq: "Fabrikam"}}) { nodes { accountnumber } } }')
    assert found["accounts"]["nodes"] == [{"accountnumber": "C-1001"}]

    unlinked = mutate(
        gw,
        "unlinkPowerPlatformIntegration(environment: $e, confirmEnvironmentName: $e, "
        "removeDataverseEnvironment: true)",
        env,
    )
    assert "errors" not in unlinked
    gone = gw.error("{ accounts { totalCount } }", token=admin(gw))
    assert gone["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
