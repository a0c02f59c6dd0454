"""A real Dataverse environment is reached over its Web API (OData v4): linked as an
existing environment, its tables are in the schema and read and written there,
dual-write keeps them in sync with F&O both ways (what other clients write comes
from the service's change feed), and a write the other side refuses is undone
in the Web API too. The service is the Dataverse-shaped OData peer (tests/peers)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from datasources.odata.endpoint import Endpoint
from datasources.odata.source import ODataSource
from gateway.auth import Role
from tests.conftest import Databases, Gateway, build_store, odata_url, start_gateway
from tests.gateway.test_change_tracking import credit_limit
from tests.gateway.test_dualwrite import (
    ACCOUNT,
    CUSTOMER,
    CUSTOMERS,
    READ_CUSTOMER,
    UPDATE_ACCOUNT,
    customer,
    run_customers,
    wait_for,
)
from tests.gateway.test_setup import admin, new_environment, setup, wait_until
from tests.peers.odata.peer import Peer
from tests.peers.odata.peer import start as start_peer

TOKEN = {"Authorization": "Bearer peer-token"}
REGISTER = (
    "mutation($n: String!, $u: String!) { registerDataverseEnvironment(name: $n, url: $u) "
    "{ name managed } }"
)


@pytest.fixture
def dataverse() -> Iterator[Peer]:
    """A Dataverse-shaped OData service with no rows."""
    with start_peer(None, service="dataverse") as peer:
        yield peer


class Linked(NamedTuple):
    gw: Gateway
    peer: Peer
    environment: str  # the F&O environment's name


@pytest.fixture
def web_api(dataverse: Peer, control_plane: Callable[..., Gateway]) -> Linked:
    """A gateway linked to a Dataverse Web API, with the dual-write application (the
    service stops after the gateway)."""
    gw, peer = control_plane(), dataverse
    env = new_environment(gw)
    name = f"{env}-dv"
    registered = gw.data(REGISTER, {"n": name, "u": odata_url(peer, "standard")}, admin(gw))
    assert registered["registerDataverseEnvironment"] == {"name": name, "managed": False}
    assert "errors" not in setup(gw, env, f', existingDataverseEnvironment: "{name}"')
    assert wait_until(gw, env, "COMPLETED")["dataverseEnvironment"] == name
    install_dual_write(gw, env)
    return Linked(gw, peer, env)


def install_dual_write(gw: Gateway, env: str) -> None:
    gw.data(
        "mutation($e: String!) { installDualWriteApplication(environment: $e) { state } }",
        {"e": env},
        token=admin(gw),
    )
    installations = "query($e: String!) { addInInstallations(environment: $e) { state } }"
    wait_for(
        lambda: gw.data(installations, {"e": env})["addInInstallations"] == [{"state": "INSTALLED"}]
    )


def service_accounts(peer: Peer, number: str) -> list[dict[str, Any]]:
    """The accounts the service itself holds (not through the gateway)."""
    found = httpx.get(
        peer.url + "accounts",
        params={"$filter": f"accountnumber eq '{number}'"},
        headers=TOKEN,
    )
    assert found.status_code == 200, found.text
    rows: list[dict[str, Any]] = found.json()["value"]
    return rows


def test_a_linked_web_api_syncs_both_ways_and_undoes_refused_writes(web_api: Linked) -> None:
    gw, peer, _ = web_api
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    assert gw.data("{ accounts { totalCount } }")["accounts"]["totalCount"] == 0
    run_customers(gw, writer)  # the legal entity reached the service as a cdm_company

    # an F&O write through the gateway is carried into the service
    gw.data(CUSTOMER, {"input": customer("WA-1")}, token=writer)
    [account] = service_accounts(peer, "WA-1")
    assert (account["name"], account["msdyn_company"]) == ("Customer WA-1", "USMF")
    assert account["creditlimit"] == 2000
    assert gw.data(ACCOUNT, {"a": "WA-1"})["accounts"]["nodes"][0]["name"] == "Customer WA-1"

    # another client of the service raises the credit limit: F&O has it
    path = f"{peer.url}accounts({account['accountid']})"
    changed = httpx.patch(path, json={"creditlimit": 7500}, headers={**TOKEN, "If-Match": "*"})
    assert changed.status_code == 204, changed.text
    wait_for(lambda: (credit_limit(gw, "WA-1") or "").startswith("7500"))

    # a Dataverse write F&O refuses (no customer group NOPE) leaves the service as it was
    refused = gw.error(
        UPDATE_ACCOUNT,
        {
            "id": account["accountid"],
            "input": {"msdyn_customergroupid": "NOPE", "creditlimit": "9"},
        },
        token=writer,
    )
    assert refused["message"].startswith("F&O refused the change:")
    [kept] = service_accounts(peer, "WA-1")
    assert (kept["creditlimit"], kept["msdyn_customergroupid"]) == (7500, "10")

    # a Dataverse write through the gateway reaches F&O once; it does not come back
    # from the change feed as another client's
    change = {"id": account["accountid"], "input": {"creditlimit": "8000"}}
    done = gw.data(UPDATE_ACCOUNT, change, token=writer)
    assert done["updateAccount"]["creditlimit"].startswith("8000")
    assert (credit_limit(gw, "WA-1") or "").startswith("8000")
    version = gw.data(READ_CUSTOMER, {"a": "WA-1"})["customerV3"]["recVersion"]
    time.sleep(1.0)  # a few tracker rounds
    assert gw.data(READ_CUSTOMER, {"a": "WA-1"})["customerV3"]["recVersion"] == version

    # a row another client creates in the service becomes a customer
    created = httpx.post(
        peer.url + "accounts",
        json={
            "accountid": str(uuid.uuid4()),
            "accountnumber": "WA-2",
            "name": "Made in Dataverse",
            "msdyn_company": "USMF",
            "msdyn_customergroupid": "10",
            "creditlimit": 300,
            "statecode": "Active",
        },
        headers=TOKEN,
    )
    assert created.status_code == 201, created.text
    wait_for(lambda: (credit_limit(gw, "WA-2") or "").startswith("300"))

    # and one it deletes goes from F&O: the feed names it by its id alone, the gateway
    # knows what it held
    gone = httpx.delete(path, headers={**TOKEN, "If-Match": "*"})
    assert gone.status_code == 204, gone.text
    wait_for(lambda: credit_limit(gw, "WA-1") is None)
    tracked = gw.data("{ dualWriteMaps { name activity { kind message } } }")["dualWriteMaps"]
    lines = next(m for m in tracked if m["name"] == CUSTOMERS)["activity"]
    assert any(
        line["kind"] == "TRACKED" and "written directly to Dataverse synced" in line["message"]
        for line in lines
    )


def test_initial_sync_copies_into_the_web_api_and_unlinking_keeps_it(web_api: Linked) -> None:
    gw, peer, env = web_api
    started = gw.data(
        f'mutation {{ runDualWriteMap(name: "{CUSTOMERS}", initialSync: true, master: FNO) '
        "{ name } }",
        token=admin(gw),
    )["runDualWriteMap"]
    names = {m["name"] for m in started}

    def all_running() -> bool:
        maps = gw.data("{ dualWriteMaps { name state } }")["dualWriteMaps"]
        return all(m["state"] == "RUNNING" for m in maps if m["name"] in names)

    wait_for(all_running, 120)
    organizations = "{ customersV3(crossCompany: true, where: {partyType: {eq: Organization}}) "
    customers = gw.data(organizations + "{ totalCount } }")["customersV3"]["totalCount"]
    assert customers > 0
    counted = httpx.get(
        peer.url + "accounts", params={"$count": "true", "$top": "0"}, headers=TOKEN
    ).json()["@odata.count"]
    assert counted == customers
    assert gw.data("{ accounts { totalCount } }")["accounts"]["totalCount"] == customers
    errors = gw.data("{ dualWriteMaps { name errorCount } }")["dualWriteMaps"]
    assert all(m["errorCount"] == 0 for m in errors if m["name"] in names)

    # unlinked, the tables leave the schema; the environment and its rows stay
    unlinked = gw.data(
        "mutation($e: String!) { unlinkPowerPlatformIntegration(environment: $e, "
        "confirmEnvironmentName: $e) { state } }",
        {"e": env},
        token=admin(gw),
    )
    assert unlinked["unlinkPowerPlatformIntegration"]["state"] == "NOT_LINKED"
    wait_for(lambda: "errors" in gw.query("{ accounts { totalCount } }"))
    kept = httpx.get(peer.url + "accounts", params={"$count": "true", "$top": "0"}, headers=TOKEN)
    assert kept.json()["@odata.count"] == customers


def test_a_service_without_the_native_tables_cannot_be_linked(
    control_plane: Callable[..., Gateway], odata_peer: Peer
) -> None:
    gw = control_plane()
    env = new_environment(gw)
    name = f"{env}-dv"
    gw.data(REGISTER, {"n": name, "u": odata_url(odata_peer, "standard")}, admin(gw))
    refused = setup(gw, env, f', existingDataverseEnvironment: "{name}"')["errors"][0]
    assert refused["extensions"]["failing"] == ["DATAVERSE_ENVIRONMENT"]
    assert "not created with Dynamics 365 apps enabled" in refused["message"]
    assert "account" in refused["message"]


@pytest.fixture
def fno_service(databases: Databases) -> Iterator[Peer]:
    """An F&O-shaped OData service of its own (the tests write to it)."""
    seed = databases.new("sqlite")
    build_store(seed, 0.02)
    with start_peer(seed) as peer:
        yield peer


def test_an_fno_service_is_set_up_and_synced_with_dataverse(
    fno_service: Peer, tmp_path: Path
) -> None:
    """The other way round: F&O is the OData service, Dataverse a store setup makes."""
    gw, running = start_gateway(
        tmp_path,
        "odata",
        odata_url(fno_service),
        demo=True,
        dataverse_location=str(tmp_path / "dataverse"),
        poll_seconds=0.1,
    )
    try:
        for name in ("CustomerV3", "LegalEntity", "CustomerGroup"):
            gw.run(gw.runtime.catalog.set_visible(name, True))
        gw.run(gw.runtime.schemas.rebuild())
        env = new_environment(gw)
        assert "errors" not in setup(gw, env, ", template: STANDARD_WITH_DUAL_WRITE")
        assert wait_until(gw, env, "COMPLETED")["state"] == "COMPLETED"
        install_dual_write(gw, env)
        writer = gw.token(Role.WRITER, sub="rep@contoso.com")
        run_customers(gw, writer)

        gw.data(CUSTOMER, {"input": customer("FS-1")}, token=writer)
        [account] = gw.data(ACCOUNT, {"a": "FS-1"})["accounts"]["nodes"]
        assert account["name"] == "Customer FS-1"

        # another client of the F&O service changes the customer: Dataverse has it
        path = f"{fno_service.url}CustomersV3(dataAreaId='usmf',CustomerAccount='FS-1')"
        changed = httpx.patch(path, json={"CreditLimit": 4321}, headers={**TOKEN, "If-Match": "*"})
        assert changed.status_code == 204, changed.text
        wait_for(
            lambda: gw.data(ACCOUNT, {"a": "FS-1"})["accounts"]["nodes"][0][
                "creditlimit"
            ].startswith("4321")
        )
    finally:
        gw.client.close()
        running.stop()


async def test_a_bulk_upsert_is_batched_and_refusals_are_per_row(dataverse: Peer) -> None:
    store = ODataSource(Endpoint.parse(odata_url(dataverse, "standard")))
    try:
        account = (await store.service()).entity("account")
        key = ["msdyn_company", "accountnumber"]

        def row(number: str, **fields: Any) -> dict[str, Any]:
            return {"msdyn_company": "USMF", "accountnumber": number, "name": number, **fields}

        async with store.unit() as unit:
            first = [row(f"B-{i}") for i in range(150)]
            assert await unit.upsert_many(account, {}, key, first, new_ids) == {}
        batches = [p for m, p in dataverse.requests if m == "POST" and "$batch" in p]
        assert len(batches) == 2  # 150 rows: two batches, not 150 requests

        again = [row("B-1", name="renamed"), row("B-new", accountid="not-a-guid"), row("B-2")]
        async with store.unit() as unit:
            refused = await unit.upsert_many(account, {}, key, again, new_ids)
        assert list(refused) == [1] and "not-a-guid" in refused[1]
        renamed = service_accounts(dataverse, "B-1")
        assert [a["name"] for a in renamed] == ["renamed"]
        assert service_accounts(dataverse, "B-new") == []

        # a unit that fails puts back what its batches wrote
        async def refused_later() -> None:
            async with store.unit() as unit:
                both = [row("B-3", name="x"), row("B-900")]
                await unit.upsert_many(account, {}, key, both, new_ids)
                raise RuntimeError("the other side refused")

        with pytest.raises(RuntimeError):
            await refused_later()
        assert [a["name"] for a in service_accounts(dataverse, "B-3")] == ["B-3"]
        assert service_accounts(dataverse, "B-900") == []
    finally:
        await store.close()


def new_ids() -> dict[str, Any]:
    return {"accountid": str(uuid.uuid4())}
