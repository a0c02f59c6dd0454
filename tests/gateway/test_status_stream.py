"""The integration status streamed over WebSocket (graphql-transport-ws) to a real
client: every change in order, and a reconnecting listener misses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from tests.conftest import Gateway
from tests.gateway.test_setup import admin, new_environment, setup

SUBSCRIPTION = """
subscription($e: String!, $after: String) {
  integrationStatus(environment: $e, after: $after) { state stage progress message cursor }
}
"""


def transport(gw: Gateway, token: str | None) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=gw.url.replace("http://", "ws://") + "/graphql",
        init_payload={"Authorization": f"Bearer {token}"} if token else {},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )


async def collect(
    gw: Gateway, env: str, after: str | None, until: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Statuses from the stream up to and including the first that `until` accepts."""
    seen: list[dict[str, Any]] = []
    request = GraphQLRequest(SUBSCRIPTION, variable_values={"e": env, "after": after})
    async with Client(transport=transport(gw, gw.reader)) as session:
        async for result in session.subscribe(request):
            seen.append(result["integrationStatus"])
            if until(seen[-1]):
                return seen
    return seen


def test_status_streams_every_change_and_resumes_from_a_cursor(
    control_plane: Callable[..., Gateway],
) -> None:
    gw = control_plane()
    env = new_environment(gw)
    asyncio.run(_stream_and_resume(gw, env))


async def _stream_and_resume(gw: Gateway, env: str) -> None:

    async def listen() -> list[dict[str, Any]]:
        return await collect(gw, env, None, lambda s: s["state"] == "COMPLETED")

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.5)  # subscribed: the current status came first
    started = await asyncio.to_thread(setup, gw, env, "", admin(gw))
    assert "errors" not in started
    seen = await asyncio.wait_for(listener, 60)
    assert seen[0]["state"] == "NOT_LINKED"
    assert [(s["state"], s["stage"]) for s in seen[1:]] == [
        ("IN_PROGRESS", "VALIDATE"),
        ("IN_PROGRESS", "CREATE_DATAVERSE_ENVIRONMENT"),
        ("IN_PROGRESS", "INSTALL_PLATFORM_COMPONENTS"),
        ("IN_PROGRESS", "LINK_ENVIRONMENTS"),
        ("COMPLETED", "COMPLETED"),
    ]
    assert [s["progress"] for s in seen[1:]] == [0, 25, 50, 75, 100]
    assert seen[-1]["message"] == "Setup completed successfully"
    cursors = [int(s["cursor"]) for s in seen[1:]]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)

    # a listener that dropped after the second change reconnects with its cursor
    replay = await asyncio.wait_for(
        collect(gw, env, seen[2]["cursor"], lambda s: s["state"] == "COMPLETED"), 30
    )
    assert replay == seen[3:]


def test_the_stream_needs_valid_credentials(control_plane: Callable[..., Gateway]) -> None:
    gw = control_plane(run_jobs=False)
    env = new_environment(gw)

    def first_error(token: str | None, environment: str) -> dict[str, Any]:
        async def run() -> None:
            request = GraphQLRequest(
                SUBSCRIPTION, variable_values={"e": environment, "after": None}
            )
            async with Client(transport=transport(gw, token)) as session:
                async for _ in session.subscribe(request):
                    raise AssertionError("a status reached a caller it should not")

        with pytest.raises(TransportQueryError) as refused:
            asyncio.run(run())
        assert refused.value.errors
        error: dict[str, Any] = refused.value.errors[0]
        return error

    anonymous = first_error(None, env)
    assert anonymous["extensions"]["code"] == "UNAUTHENTICATED"
    assert "reader role" in anonymous["message"]
    forged = first_error("not-a-token", env)
    assert forged["extensions"]["code"] == "UNAUTHENTICATED" and "not valid" in forged["message"]
    assert first_error(gw.reader, "nowhere")["extensions"]["code"] == "NOT_FOUND"
