"""The gateway over an OData service as its F&O store (odatapy serving F&O-shaped
metadata, tests/peers): writes with ETags, throttling waited out within a budget,
tokens fetched, kept and renewed, the service's own words passed on, and the catalog
read from `$metadata`. Reads are in tests/test_reads.py (its `odata` gateway)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from datasources.odata.endpoint import Endpoint
from datasources.odata.source import ODataSource
from gateway.auth import Role
from gateway.check import stores
from gateway.kernel.errors import Conflict, UpstreamFailed
from gateway.settings import Settings
from tests.conftest import PEER_SECRET, Databases, Gateway, build_store, odata_url, start_gateway
from tests.peers.odata.peer import Peer
from tests.peers.odata.peer import start as start_peer

CREATE = """mutation($input: CustomerV3CreateInput!) {
  createCustomerV3(input: $input) { dataAreaId customerAccount organizationName creditLimit
    onHoldStatus customerGroup { description } } }"""
UPDATE = """mutation($account: String!, $input: CustomerV3UpdateInput!) {
  updateCustomerV3(dataAreaId: "USMF", customerAccount: $account, input: $input) {
    customerAccount creditLimit deliveryAddressCity } }"""
DELETE = """mutation($account: String!) {
  deleteCustomerV3(dataAreaId: "USMF", customerAccount: $account) { entity key } }"""
READ = """query($account: String!) {
  customerV3(dataAreaId: "USMF", customerAccount: $account) { organizationName creditLimit } }"""


@pytest.fixture(scope="module")
def peer(databases: Databases) -> Iterator[Peer]:
    seed = databases.new("sqlite")
    build_store(seed, 0.02)
    with start_peer(seed, page_size=25, token_seconds=2) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(peer: Peer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw, running = start_gateway(tmp_path_factory.mktemp("odata"), "odata", odata_url(peer))
    gw.peer = peer
    admin = {"Authorization": f"Bearer {gw.token(Role.ADMIN)}"}
    for name in ("CustomerV3", "CustomerGroup"):
        shown = gw.client.post(
            "/graphql",
            json={
                "query": f'mutation {{ setEntityVisible(name: "{name}", visible: true) {{ name }} }}'
            },
            headers=admin,
        )
        assert "errors" not in shown.json(), shown.text
    yield gw
    gw.client.close()
    running.stop()


def writer(gw: Gateway) -> str:
    return gw.token(Role.WRITER)


def new_customer(account: str, **fields: Any) -> dict[str, Any]:
    return {
        "dataAreaId": "USMF",
        "customerAccount": account,
        "organizationName": "Northwind Traders",
        "partyType": "Organization",
        "customerGroupId": "10",
        "salesCurrencyCode": "USD",
        "creditLimitIsMandatory": "No",
        "onHoldStatus": "Invoice",
        "creditLimit": "12345678901.25",
        **fields,
    }


def test_the_catalog_is_the_services_metadata(gateway: Gateway) -> None:
    admin = gateway.token(Role.ADMIN)
    found = gateway.data(
        '{ entityCatalog(search: "Customer") { name visible fields { name type } } }',
        token=admin,
    )["entityCatalog"]
    customer = next(e for e in found if e["name"] == "CustomerV3")
    assert customer["visible"]
    names = {f["name"] for f in customer["fields"]}
    assert {"dataAreaId", "CustomerAccount", "OnHoldStatus"} <= names
    assert "RecVersion" not in names  # F&O publishes no row version: writes use ETags


def test_create_update_delete_read_back_through_the_service(gateway: Gateway) -> None:
    token = writer(gateway)
    created = gateway.data(CREATE, {"input": new_customer("OD-0001")}, token)["createCustomerV3"]
    assert created == {
        "dataAreaId": "usmf",
        "customerAccount": "OD-0001",
        "organizationName": "Northwind Traders",
        "creditLimit": "12345678901.25",  # exact: decimals never pass through a float
        "onHoldStatus": "Invoice",
        "customerGroup": {"description": created["customerGroup"]["description"]},
    }
    assert created["customerGroup"]["description"]
    updated = gateway.data(
        UPDATE, {"account": "OD-0001", "input": {"deliveryAddressCity": "Oslo"}}, token
    )["updateCustomerV3"]
    assert updated["deliveryAddressCity"] == "Oslo"
    patches = [p for m, p in gateway.peer.requests if m == "PATCH"]
    assert patches and "OD-0001" in patches[-1]
    deleted = gateway.data(DELETE, {"account": "OD-0001"}, token)["deleteCustomerV3"]
    assert deleted["entity"] == "CustomerV3"
    assert gateway.data(READ, {"account": "OD-0001"})["customerV3"] is None
    missing = gateway.error(DELETE, {"account": "OD-0001"}, token)
    assert missing["extensions"]["code"] == "NOT_FOUND"


def test_a_writer_passes_the_etag_it_read_and_a_stale_one_is_a_conflict(
    gateway: Gateway,
) -> None:
    token = writer(gateway)
    gateway.data(CREATE, {"input": new_customer("OD-0004")}, token)
    tagged = """query($account: String!) {
      customerV3(dataAreaId: "USMF", customerAccount: $account) { etag creditLimit }
      customersV3(crossCompany: true, first: 1) { nodes { etag customerGroup { etag } } } }"""
    read = gateway.data(tagged, {"account": "OD-0004"})
    etag = read["customerV3"]["etag"]
    assert etag.startswith('W/"')
    listed = read["customersV3"]["nodes"][0]
    assert listed["etag"] and listed["customerGroup"]["etag"]  # expanded rows carry theirs
    update = """mutation($account: String!, $tag: String, $input: CustomerV3UpdateInput!) {
      updateCustomerV3(dataAreaId: "USMF", customerAccount: $account, ifMatch: $tag,
        input: $input) { creditLimit etag } }"""
    first = gateway.data(
        update, {"account": "OD-0004", "tag": etag, "input": {"creditLimit": "10"}}, token
    )["updateCustomerV3"]
    assert first["creditLimit"] == "10" and first["etag"] != etag

    # the version read before that change is stale now: nothing is written
    stale = gateway.error(
        update, {"account": "OD-0004", "tag": etag, "input": {"creditLimit": "20"}}, token
    )
    assert stale["extensions"]["code"] == "CONFLICT"
    assert gateway.data(READ, {"account": "OD-0004"})["customerV3"]["creditLimit"] == "10"
    delete = """mutation($account: String!, $tag: String) {
      deleteCustomerV3(dataAreaId: "USMF", customerAccount: $account, ifMatch: $tag) { entity } }"""
    refused = gateway.error(delete, {"account": "OD-0004", "tag": etag}, token)
    assert refused["extensions"]["code"] == "CONFLICT"
    gateway.data(delete, {"account": "OD-0004", "tag": first["etag"]}, token)
    assert gateway.data(READ, {"account": "OD-0004"})["customerV3"] is None

    # rows with ETags have no row version to pass
    versioned = gateway.error(
        'mutation { updateCustomerV3(dataAreaId: "USMF", customerAccount: "US-001", '
        'expectedVersion: 1, input: {creditLimit: "1"}) { creditLimit } }',
        token=token,
    )
    assert versioned["extensions"]["code"] == "BAD_USER_INPUT"
    assert "ifMatch" in versioned["message"]


def test_the_services_refusal_is_passed_on(gateway: Gateway) -> None:
    token = writer(gateway)
    gateway.data(CREATE, {"input": new_customer("OD-0002")}, token)
    twice = gateway.error(CREATE, {"input": new_customer("OD-0002")}, token)
    assert twice["extensions"]["code"] == "CONFLICT"
    assert "the OData service refused the change" in twice["message"]


def source(peer: Peer, **client: Any) -> ODataSource:
    found = ODataSource(Endpoint.parse(odata_url(peer)))
    for name, value in client.items():
        setattr(found.client, name, value)
    return found


async def test_a_stale_etag_is_a_conflict(peer: Peer) -> None:
    store = source(peer)
    entity = (await store.service()).entity("CustomerGroup")
    key = {"dataAreaId": "usmf", "CustomerGroupId": "10"}
    row, etag = await store.read_row(entity, key)
    assert row is not None and etag.startswith('W/"')
    path = (await store.renderer()).key_path(entity, key)
    change = {"Description": "changed by someone else"}
    await store.client.send("PATCH", path, body=change, headers={"If-Match": etag})
    with pytest.raises(Conflict, match="changed by someone else since it was read"):
        await store.client.send("PATCH", path, body=change, headers={"If-Match": etag})
    await store.close()


async def test_throttling_is_waited_out_within_the_budget(peer: Peer) -> None:
    store = source(peer)
    await store.published_entities()
    peer.fail_next(2, 429, retry_after=1)
    started, before = time.monotonic(), len(peer.requests)
    assert "usmf" in await store.companies()
    assert time.monotonic() - started >= 2  # Retry-After was honoured, twice
    assert len(peer.requests) - before == 3
    peer.fail_next(50, 503, retry_after=1)
    impatient = source(peer, budget=2.5)
    with pytest.raises(UpstreamFailed, match=r"throttling the gateway \(503\).*Injected failure"):
        await impatient.published_entities()
    peer.clear_faults()
    await store.close()
    await impatient.close()


async def test_tokens_are_kept_renewed_and_refetched_when_refused(peer: Peer) -> None:
    store = source(peer)
    tokens = store.client.tokens
    assert tokens is not None
    issued = peer.tokens_issued
    await store.published_entities()
    await store.ping()
    assert peer.tokens_issued == issued + 1  # one token for both requests
    await asyncio.sleep(1.7)  # the peer's tokens live 2 s: renewed before they lapse
    await store.ping()
    assert peer.tokens_issued == issued + 2
    tokens._token = "revoked-by-the-service"
    await store.ping()  # a 401, a new token, the same request again
    assert peer.tokens_issued == issued + 3
    await store.close()


async def test_wrong_credentials_are_said_plainly_and_the_secret_never_shown(
    peer: Peer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(PEER_SECRET, "not-the-secret")
    caplog.set_level(logging.DEBUG)
    store = source(peer)
    with pytest.raises(UpstreamFailed, match="refused the gateway's credentials") as refused:
        await store.published_entities()
    assert "not-the-secret" not in str(refused.value) and "not-the-secret" not in caplog.text
    await store.close()


async def test_a_collection_the_service_lacks_is_said_not_read_as_empty(peer: Peer) -> None:
    store = source(peer)
    with pytest.raises(UpstreamFailed, match="has no CustomersV9"):
        await store._all("CustomersV9", {})
    await store.close()


def test_an_unreachable_service_is_upstream_failed() -> None:
    store = ODataSource(Endpoint.parse("http://127.0.0.1:9/data/"))  # discard: none listens
    store.client.budget = 0.5
    with pytest.raises(UpstreamFailed, match="could not be reached"):
        asyncio.run(store.published_entities())


async def test_check_reads_the_services_metadata(peer: Peer, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, fno_url=odata_url(peer), demo=False)
    found = {f.subject: f for f in await stores(settings)}["F&O store"]
    assert found.ok and "8 entities published" in str(found), found
    wrong = Settings(data_dir=tmp_path, fno_url=odata_url(peer) + "&password=x", demo=False)
    refused = {f.subject: f for f in await stores(wrong)}["F&O store"]
    assert not refused.ok and "unknown OData store URL parameters: password" in str(refused)


def test_a_change_made_through_the_gateway_raises_its_events(gateway: Gateway) -> None:
    """The service has no outbox: the events wait in the control store's, from where the
    relay logs them as for any store."""
    gateway.data(CREATE, {"input": new_customer("OD-0003")}, writer(gateway))
    query = '{ businessEvents(entities: ["CustomerV3"], first: 1000) }'
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logged = gateway.data(query)["businessEvents"]
        created = [e for e in logged if e.get("CustomerAccount") == "OD-0003"]
        if created:
            break
        time.sleep(0.1)
    assert len(created) == 1, logged
    assert created[0]["BusinessEventId"].endswith("CreatedDataEvent")
    assert created[0]["BusinessEventLegalEntity"] == "USMF"


async def test_next_links_absolute_or_relative_are_followed(peer: Peer) -> None:
    """F&O and Dataverse send absolute next links; CAP and others relative ones."""
    store = source(peer)
    scope = {"cross-company": "true"}
    counted = await store.client.get("SalesOrderLines", {**scope, "$top": "0", "$count": "true"})
    lines = int(counted["@odata.count"])
    assert lines > 50  # pages of 25
    try:
        for relative in (False, True):
            peer.relative_links = relative
            first = await store.client.get("SalesOrderLines", scope)
            assert first["@odata.nextLink"].startswith("http://") is not relative
            before = len(peer.requests)
            rows = await store._all("SalesOrderLines", {**scope, "$select": "InventoryLotId"})
            assert len({(r["dataAreaId"], r["InventoryLotId"]) for r in rows}) == lines
            followed = [p for _, p in peer.requests[before:] if "$skiptoken" in unquote(p)]
            assert len(followed) == -(-lines // 25) - 1
    finally:
        peer.relative_links = False
        await store.close()
