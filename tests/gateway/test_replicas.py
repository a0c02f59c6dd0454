"""Several `fno-gateway serve` processes on one PostgreSQL behave as one gateway."""

from __future__ import annotations

import json
import signal
import threading
import time
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


def test_a_catalog_change_reaches_every_replica_within_a_second(
    databases: Databases, tmp_path: Path
) -> None:
    fno = databases.new("postgresql")
    build_store(fno, 0.02)
    env = {
        "GATEWAY_FNO_URL": fno,
        "GATEWAY_CONTROL_URL": databases.new("postgresql"),
        "GATEWAY_DEMO": "false",
        "GATEWAY_JWT_SECRET": JWT_SECRET,
        "GATEWAY_POLL_SECONDS": "30",  # only the notification can make it prompt
        "GATEWAY_LOG_LEVEL": "warning",
    }
    a = Server({**env, "GATEWAY_DATA_DIR": str(tmp_path / "a")})
    b = Server({**env, "GATEWAY_DATA_DIR": str(tmp_path / "b")})
    try:
        assert "vendorGroups" not in query_fields(b)  # not auto-created: hidden at first
        for visible in (True, False):
            a.query(VISIBLE % str(visible).lower())
            changed = time.monotonic()
            while ("vendorGroups" in query_fields(b)) is not visible:
                if time.monotonic() - changed > 1.0:
                    pytest.fail(f"replica B still serves the old schema after 1 s ({visible=})")
                time.sleep(0.02)
    finally:
        for server in (a, b):
            server.process.terminate()
            server.process.wait(timeout=30)


def test_sigterm_lets_requests_finish_and_tells_subscribers_to_reconnect(
    databases: Databases, tmp_path: Path
) -> None:
    fno = databases.new("postgresql")
    build_store(fno, 0.02)
    control = databases.new("postgresql")
    server = Server(
        {
            "GATEWAY_FNO_URL": fno,
            "GATEWAY_CONTROL_URL": control,
            "GATEWAY_DATA_DIR": str(tmp_path),
            "GATEWAY_DEMO": "false",
            "GATEWAY_JWT_SECRET": JWT_SECRET,
            "GATEWAY_LOG_LEVEL": "warning",
        }
    )
    token = jwt.encode(
        {"sub": "reader", "roles": ["reader"], "iss": "fno-gateway", "exp": time.time() + 600},
        JWT_SECRET,
        algorithm="HS256",
    )
    url = server.url.replace("http://", "ws://")
    with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as subscriber:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        subscriber.send(json.dumps(init))
        assert json.loads(subscriber.recv(timeout=10))["type"] == "connection_ack"
        subscription = {"query": "subscription { businessEvents { cursor } }"}
        subscriber.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscription}))
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
    databases: Databases, tmp_path: Path
) -> None:
    fno = databases.new("postgresql")
    build_store(fno, 0.02)
    env = {
        "GATEWAY_FNO_URL": fno,
        "GATEWAY_CONTROL_URL": databases.new("postgresql"),
        "GATEWAY_DEMO": "false",
        "GATEWAY_JWT_SECRET": JWT_SECRET,
        "GATEWAY_POLL_SECONDS": "30",  # only the notifications can make it prompt
        "GATEWAY_LOG_LEVEL": "warning",
    }
    a = Server({**env, "GATEWAY_DATA_DIR": str(tmp_path / "a")})
    b = Server({**env, "GATEWAY_DATA_DIR": str(tmp_path / "b")})
    token = jwt.encode(
        {"sub": "rep", "roles": ["writer"], "iss": "fno-gateway", "exp": time.time() + 600},
        JWT_SECRET,
        algorithm="HS256",
    )
    try:
        with connect(
            b.url.replace("http://", "ws://"), subprotocols=[Subprotocol("graphql-transport-ws")]
        ) as subscriber:
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            subscriber.send(json.dumps(init))
            assert json.loads(subscriber.recv(timeout=10))["type"] == "connection_ack"
            subscription = {
                "query": SUBSCRIBE,
                "variables": {"filter": {"events": ["CustomerCreatedBusinessEvent"]}},
            }
            subscriber.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscription}))
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
    finally:
        for server in (a, b):
            server.process.terminate()
            server.process.wait(timeout=30)
