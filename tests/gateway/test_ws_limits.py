"""WebSocket limits, over both protocols: subscriptions per connection (one past the
limit is refused with a coded error and the connection stays), connections per caller
(one past it is closed with 1008 naming the setting), and keep-alive messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from gateway.auth import Role
from tests.conftest import Databases, Gateway, build_store, start_gateway

EVENTS = {"query": "subscription { businessEvents { cursor } }"}


@pytest.fixture(scope="module")
def gw(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    url = databases.new("sqlite")
    build_store(url, 0.02)
    gateway, running = start_gateway(
        tmp_path_factory.mktemp("ws"),
        "sqlite",
        url,
        ws_max_subscriptions=2,
        ws_connections_per_caller=2,
    )
    yield gateway
    gateway.client.close()
    running.stop()


@contextmanager
def opened(
    gw: Gateway, token: str, protocol: str = "graphql-transport-ws"
) -> Iterator[ClientConnection]:
    with connect(
        gw.url.replace("http", "ws") + "/graphql", subprotocols=[Subprotocol(protocol)]
    ) as ws:
        ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        yield ws


def received(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if message["type"] == kind:
            return message
        assert message["type"] in ("next", "data", "ka", "connection_ack"), message


def test_subscriptions_past_the_limit_are_refused_and_the_connection_stays(gw: Gateway) -> None:
    with opened(gw, gw.token(Role.READER, sub="sub-limit")) as ws:
        received(ws, "connection_ack")
        for n in ("1", "2", "3"):
            ws.send(json.dumps({"id": n, "type": "subscribe", "payload": EVENTS}))
        refused = received(ws, "error")
        assert refused["id"] == "3"
        (error,) = refused["payload"]
        assert error["extensions"] == {
            "code": "LIMIT_EXCEEDED",
            "limit": "GATEWAY_WS_MAX_SUBSCRIPTIONS",
        }
        ws.send(json.dumps({"id": "1", "type": "complete"}))
        ws.send(json.dumps({"id": "4", "type": "subscribe", "payload": EVENTS}))
        ws.send(json.dumps({"type": "ping"}))
        received(ws, "pong")  # still open, and the fourth took the first one's place
        ws.send(json.dumps({"id": "5", "type": "subscribe", "payload": EVENTS}))
        assert received(ws, "error")["id"] == "5"


def test_connections_past_the_limit_per_caller_are_closed_with_a_reason(gw: Gateway) -> None:
    token, other = gw.token(Role.READER, sub="conn-limit"), gw.token(Role.READER, sub="someone")
    with opened(gw, token) as first, opened(gw, token) as second:
        received(first, "connection_ack")
        received(second, "connection_ack")
        with opened(gw, token) as third, pytest.raises(ConnectionClosed) as closed:
            third.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "GATEWAY_WS_CONNECTIONS_PER_CALLER" in closed.value.rcvd.reason
        with opened(gw, other) as theirs:  # another caller has a count of its own
            received(theirs, "connection_ack")
    with opened(gw, token) as again:  # closed ones no longer count
        received(again, "connection_ack")


def test_the_legacy_protocol_keeps_alive_and_has_the_same_limits(gw: Gateway) -> None:
    with opened(gw, gw.token(Role.READER, sub="legacy"), "graphql-ws") as ws:
        received(ws, "connection_ack")
        received(ws, "ka")
        for n in ("1", "2", "3"):
            ws.send(json.dumps({"id": n, "type": "start", "payload": EVENTS}))
        refused = received(ws, "error")
        assert refused["id"] == "3"
        assert refused["payload"]["extensions"]["limit"] == "GATEWAY_WS_MAX_SUBSCRIPTIONS"
