"""Several `fno-gateway serve` processes on one PostgreSQL behave as one gateway."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.conftest import JWT_SECRET, Databases, build_store
from tests.gateway.test_dualwrite import customer
from tests.gateway.test_event_stream import SUBSCRIBE
from tests.gateway.test_setup_kill import Server, TableLock
from tests.test_writes import CREATE

FIELDS = "{ __schema { queryType { fields { name } } } }"
VISIBLE = 'mutation { setEntityVisible(name: "VendorGroup", visible: %s) { visible } }'


def query_fields(server: Server) -> set[str]:
    return {f["name"] for f in server.query(FIELDS)["__schema"]["queryType"]["fields"]}


def shared_stores(databases: Databases) -> dict[str, str]:
    """The environment of gateways on one PostgreSQL (a small F&O store, a control store),
    polling slowed down so that only notifications can make a change prompt."""
    fno = databases.new("postgresql")
    build_store(fno, 0.02)
    return {
        "GATEWAY_FNO_URL": fno,
        "GATEWAY_CONTROL_URL": databases.new("postgresql"),
        "GATEWAY_DEMO": "false",
        "GATEWAY_JWT_SECRET": JWT_SECRET,
        "GATEWAY_POLL_SECONDS": "30",
        "GATEWAY_LOG_LEVEL": "warning",
    }


@pytest.fixture
def replicas(databases: Databases, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    env = shared_stores(databases)
    started: list[Server] = []
    try:
        for name in ("a", "b"):
            started.append(Server({**env, "GATEWAY_DATA_DIR": str(tmp_path / name)}))
        yield started[0], started[1]
    finally:
        for server in started:
            server.process.terminate()
            server.process.wait(timeout=30)


def bearer(role: str) -> str:
    claims = {"sub": role, "roles": [role], "iss": "fno-gateway", "exp": time.time() + 600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def test_a_catalog_change_reaches_every_replica_within_a_second(
    replicas: tuple[Server, Server],
) -> None:
    a, b = replicas
    assert "vendorGroups" not in query_fields(b)  # not auto-created: hidden at first
    for visible in (True, False):
        a.query(VISIBLE % str(visible).lower())
        changed = time.monotonic()
        while ("vendorGroups" in query_fields(b)) is not visible:
            if time.monotonic() - changed > 1.0:
                pytest.fail(f"replica B still serves the old schema after 1 s ({visible=})")
            time.sleep(0.02)


def test_sigterm_lets_requests_finish_and_tells_subscribers_to_reconnect(
    databases: Databases, tmp_path: Path
) -> None:
    env = shared_stores(databases)
    fno = env["GATEWAY_FNO_URL"]
    server = Server({**env, "GATEWAY_DATA_DIR": str(tmp_path)})
    token = bearer("reader")
    subscription = {"query": "subscription { businessEvents { cursor } }"}
    with subscribed(server, token, subscription) as subscriber:
        lock = TableLock(fno)
        lock.take("custcustomerv3entity")
        answers: list[httpx.Response] = []
        read = '{ customersV3(company: "USMF", first: 1) { nodes { customerAccount } } }'
        headers = {"Authorization": f"Bearer {token}"}
        reader = threading.Thread(
            target=lambda: answers.append(
                httpx.post(server.url, json={"query": read}, headers=headers, timeout=60)
            )
        )
        try:
            reader.start()
            while lock.waiters() == 0:  # the read is in flight, waiting for the table
                time.sleep(0.02)
            server.process.send_signal(signal.SIGTERM)
            assert close_code(subscriber) == 1012  # service restart: reconnect elsewhere
            time.sleep(0.3)
            assert server.process.poll() is None  # still finishing the read
        finally:
            lock.release()
    reader.join(timeout=30)
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["data"]["customersV3"]["nodes"]
    # uvicorn finishes its shutdown, then ends by the signal it was sent, as is proper
    assert server.process.wait(timeout=30) == -signal.SIGTERM


def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes the connection; the code it closed with."""
    try:
        while True:
            ws.recv(timeout=10)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


def test_events_raised_on_one_replica_reach_subscribers_on_another(
    replicas: tuple[Server, Server],
) -> None:
    a, b = replicas
    token = bearer("writer")
    subscription = {
        "query": SUBSCRIBE,
        "variables": {"filter": {"events": ["CustomerCreatedBusinessEvent"]}},
    }
    with subscribed(b, token, subscription) as subscriber:
        time.sleep(0.5)  # subscribed, past the (empty) replay
        headers = {"Authorization": f"Bearer {token}"}
        accounts = [f"RP-{n}" for n in range(5)]
        for account in accounts:
            created = httpx.post(
                a.url,
                json={"query": CREATE, "variables": {"input": customer(account)}},
                headers=headers,
                timeout=30,
            ).json()
            assert "errors" not in created, created
        written = time.monotonic()
        received: list[dict[str, Any]] = []
        while len(received) < len(accounts):
            message = json.loads(subscriber.recv(timeout=5))
            assert message["type"] == "next", message
            received += message["payload"]["data"]["businessEvents"]["events"]
        assert time.monotonic() - written < 2.0
    assert [e["CustomerAccount"] for e in received] == accounts  # in order, once each
    numbers = [e["ControlNumber"] for e in received]
    assert numbers == sorted(numbers)


@contextmanager
def subscribed(
    server: Server, token: str, subscription: dict[str, Any]
) -> Iterator[ClientConnection]:
    """A graphql-transport-ws connection with one subscription started."""
    url = server.url.replace("http://", "ws://")
    with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        ws.send(json.dumps(init))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscription}))
        yield ws
