"""The businessEvents subscription over graphql-transport-ws, with real clients: it
replays after a cursor then follows live, a listener that reconnects with its last
cursor misses nothing, and a listener that stops reading neither stalls the others
nor loses anything: it is told, and served from the event log."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import websockets
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from gateway.auth import Role
from gateway.events import log
from tests.conftest import Gateway
from tests.gateway.test_dualwrite import customer
from tests.test_writes import CREATE

CREATED = "CustomerCreatedBusinessEvent"
SUBSCRIBE = """subscription($after: String, $filter: BusinessEventFilter) {
  businessEvents(after: $after, filter: $filter) { cursor events notice } }"""


def transport(gw: Gateway, token: str) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=gw.url.replace("http://", "ws://") + "/graphql",
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )


async def receive(
    gw: Gateway, token: str, count: int, after: str | None, **filter: Any
) -> tuple[list[dict[str, Any]], str]:
    """The first `count` events after a cursor, and the cursor to go on from."""
    got: list[dict[str, Any]] = []
    cursor = after
    async with Client(transport=transport(gw, token)) as session:
        variables = {"after": after, "filter": filter or None}
        async for batch in session.subscribe(GraphQLRequest(SUBSCRIBE, variable_values=variables)):
            got += batch["businessEvents"]["events"]
            cursor = batch["businessEvents"]["cursor"]
            if len(got) >= count:
                break
    assert cursor is not None
    return got, cursor


def create(gw: Gateway, token: str, *accounts: str) -> None:
    for account in accounts:
        gw.data(CREATE, {"input": customer(account)}, token=token)


def test_replay_then_live_then_resume_from_the_cursor(
    fresh_gateway: Callable[..., Gateway],
) -> None:
    gw = fresh_gateway()
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    reader = gw.token(Role.READER)
    create(gw, writer, "ES-1", "ES-2")

    async def scenario() -> None:
        # replay from the start, then a write made while listening arrives live
        listening = asyncio.create_task(receive(gw, reader, 3, "0", events=[CREATED]))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(create, gw, writer, "ES-3")
        first, cursor = await asyncio.wait_for(listening, 30)
        assert [e["CustomerAccount"] for e in first] == ["ES-1", "ES-2", "ES-3"]
        numbers = [e["ControlNumber"] for e in first]
        assert numbers == sorted(numbers) and cursor == str(numbers[-1])

        # gone for a while: reconnecting with the cursor misses nothing, repeats nothing
        await asyncio.to_thread(create, gw, writer, "ES-4", "ES-5")
        again, _ = await asyncio.wait_for(receive(gw, reader, 2, cursor, events=[CREATED]), 30)
        assert [e["CustomerAccount"] for e in again] == ["ES-4", "ES-5"]

        # every event: each customer's business event and its data event, in order
        everything, _ = await asyncio.wait_for(receive(gw, reader, 10, "0"), 30)
        assert len(everything) == 10
        assert [e["ControlNumber"] for e in everything] == sorted(
            e["ControlNumber"] for e in everything
        )

        # a reader of another legal entity gets nothing of USMF's, even when asking
        demf = gw.token(Role.READER, companies=["DEMF"])
        other = asyncio.create_task(receive(gw, demf, 1, "0", legalEntities=["USMF"]))
        await asyncio.sleep(1.0)
        assert not other.done()
        other.cancel()
        with suppress(asyncio.CancelledError):
            await other

    asyncio.run(scenario())


def test_bad_cursor_and_no_credentials_are_refused(fresh_gateway: Callable[..., Gateway]) -> None:
    gw = fresh_gateway()

    async def first_error(token: str, after: str) -> Any:
        async with Client(transport=transport(gw, token)) as session:
            try:
                request = GraphQLRequest(SUBSCRIBE, variable_values={"after": after})
                async for _ in session.subscribe(request):
                    pass
            except TransportQueryError as exc:  # the GraphQL error the gateway sent
                return exc.errors[0] if exc.errors else None
        return None

    bad = asyncio.run(first_error(gw.token(Role.READER), "yesterday"))
    assert bad["extensions"]["code"] == "BAD_USER_INPUT" and "yesterday" in bad["message"]
    anonymous = asyncio.run(first_error("not-a-token", "0"))
    assert anonymous["extensions"]["code"] == "UNAUTHENTICATED"


def logged(count: int) -> list[dict[str, Any]]:
    """Events as the relay hands them to the log."""
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "event_id": str(uuid.uuid4()),
            "business_event": CREATED,
            "major": 1,
            "minor": 0,
            "category": "Customer",
            "legal_entity": "USMF",
            "entity": None,
            "payload": json.dumps({"CustomerAccount": f"BULK-{i:05}", "Filler": "x" * 200}),
            "initiating_user": "bulk",
            "at": now,
        }
        for i in range(count)
    ]


def test_a_listener_that_stops_reading_stalls_nobody_and_loses_nothing(
    fresh_gateway: Callable[..., Gateway],
) -> None:
    """The stalled listener's socket fills, its buffer (100 events here) overflows: the
    others go on; once it reads again it gets every event, in order, and a notice."""
    gw = fresh_gateway(event_buffer=100)
    reader = gw.token(Role.READER)
    total = 20_000
    url = gw.url.replace("http://", "ws://") + "/graphql"

    async def append() -> None:
        async with gw.runtime.control_engine.begin() as conn:
            await log.append(conn, logged(total))
        gw.runtime.notifier.notify()

    async def scenario() -> None:
        async with websockets.connect(
            url, subprotocols=["graphql-transport-ws"], max_queue=1
        ) as stalled:
            await stalled.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {reader}"}}
                )
            )
            assert json.loads(await stalled.recv())["type"] == "connection_ack"
            await stalled.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": SUBSCRIBE},
                    }
                )
            )
            listening = asyncio.create_task(receive(gw, reader, total, None))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(gw.run, append())
            fast, _ = await asyncio.wait_for(listening, 60)  # while the other reads nothing
            assert [e["CustomerAccount"] for e in fast] == [f"BULK-{i:05}" for i in range(total)]

            got: list[str] = []
            notices: list[str] = []
            while len(got) < total:
                message = json.loads(await asyncio.wait_for(stalled.recv(), 30))
                assert message["type"] == "next", message
                batch = message["payload"]["data"]["businessEvents"]
                got += [e["CustomerAccount"] for e in batch["events"]]
                notices += [batch["notice"]] if batch["notice"] else []
            assert got == [f"BULK-{i:05}" for i in range(total)]
            assert len(notices) == 1 and notices[0].startswith("BUFFER_FULL")

    asyncio.run(scenario())


def test_the_fast_path_answers_as_the_executor_does(fresh_gateway: Callable[..., Gateway]) -> None:
    """A plain selection is served without the executor, one with a fragment by it:
    both give the same messages."""
    gw = fresh_gateway()
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    create(gw, writer, "ES-F1", "ES-F2")
    plain = """subscription($f: BusinessEventFilter) {
      feed: businessEvents(after: "0", filter: $f) { at: cursor events __typename notice } }"""
    general = """subscription($f: BusinessEventFilter) {
      feed: businessEvents(after: "0", filter: $f) {
        ... on BusinessEventBatch { at: cursor events __typename notice } } }"""
    schema = gw.runtime.schemas.current
    assert schema is not None and schema.fast_streams is not None
    assert schema.fast_streams._shape(plain, None) is not None
    assert schema.fast_streams._shape(general, None) is None

    async def both(query: str) -> tuple[list[Any], dict[str, Any]]:
        """The two events, and the last message without them."""
        got: list[Any] = []
        async with Client(transport=transport(gw, gw.token(Role.READER))) as session:
            request = GraphQLRequest(query, variable_values={"f": {"events": [CREATED]}})
            async for batch in session.subscribe(request):
                got += batch["feed"]["events"]
                if len(got) == 2:
                    return got, {k: v for k, v in batch["feed"].items() if k != "events"}
        raise AssertionError("the stream ended")

    fast, slow = asyncio.run(both(plain)), asyncio.run(both(general))
    assert fast == slow
    assert [e["CustomerAccount"] for e in fast[0]] == ["ES-F1", "ES-F2"]
    assert fast[1] == {
        "at": str(fast[0][1]["ControlNumber"]),
        "__typename": "BusinessEventBatch",
        "notice": None,
    }
