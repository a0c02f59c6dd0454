"""Business events to webhooks and the message broker, with real receivers: an HTTP
server in the test that fails N times then accepts (checking each signature), and the
machine's NATS JetStream. Activations, retries, the errors store with resend and
payload download, the delivery log, test messages, and who may do what."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import nats
import pytest

from gateway.auth import Role
from tests.conftest import Gateway, run_sql, unavailable
from tests.gateway.test_change_tracking import INSERT_CUSTOMER
from tests.gateway.test_dualwrite import customer, wait_for
from tests.test_writes import CREATE

NATS_URL = os.environ.get("GATEWAY_TEST_NATS_URL", "nats://127.0.0.1:4222")
CREATED = "CustomerCreatedBusinessEvent"

CREATE_ENDPOINT = """mutation($input: BusinessEventEndpointInput!) {
  createBusinessEventEndpoint(input: $input) { secret endpoint { name kind position } } }"""
ACTIVATE = """mutation($event: String!, $endpoint: String!, $le: String!) {
  activateBusinessEvent(event: $event, endpoint: $endpoint, legalEntity: $le) {
    id businessEvent legalEntity endpoint active activatedBy } }"""
DELIVERIES = """query($endpoint: String!) { businessEventDeliveries(endpoint: $endpoint) {
  controlNumber businessEvent delivered tries detail } }"""
ERRORS = """query($endpoint: String, $pending: Boolean!) {
  businessEventErrors(endpoint: $endpoint, pending: $pending) {
    id endpoint eventId businessEvent legalEntity message tries resentTo payload } }"""
RESEND = """mutation($ids: [Int!]!, $endpoint: String) {
  resendBusinessEventErrors(ids: $ids, endpoint: $endpoint) {
    id outcome { delivered tries detail } } }"""
TEST = """mutation($endpoint: String!) {
  sendTestBusinessEvent(endpoint: $endpoint) { delivered tries detail } }"""


class Receiver:
    """A real HTTP server that answers 500 to the first `failures` requests, then 200,
    and keeps what it received: body, headers, and whether the signature held."""

    def __init__(self, failures: int = 0, port: int = 0) -> None:
        """`port`: where to listen (0: any free one; a receiver back after an outage
        listens where it did before)."""
        self.failures = failures
        self.delay = 0.0  # seconds before each answer: a slow receiver
        self.secret = ""
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers["X-Fno-Timestamp"]
                expected = hmac.new(
                    receiver.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256
                ).hexdigest()
                receiver.received.append(
                    {
                        "event": json.loads(body),
                        "headers": dict(self.headers),
                        "signed": self.headers["X-Fno-Signature"] == f"sha256={expected}",
                    }
                )
                failing = len(receiver.received) <= receiver.failures
                time.sleep(receiver.delay)
                self.send_response(500 if failing else 200)
                self.end_headers()
                self.wfile.write(b"busy, try later" if failing else b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, name: str = CREATED) -> list[dict[str, Any]]:
        return [r["event"] for r in self.received if r["event"]["BusinessEventId"] == name]


@pytest.fixture
def receivers() -> Iterator[Callable[[int], Receiver]]:
    made: list[Receiver] = []

    def make(failures: int = 0) -> Receiver:
        made.append(Receiver(failures))
        return made[-1]

    yield make
    for r in made:
        r.server.shutdown()
        r.server.server_close()


def webhook(gw: Gateway, token: str, name: str, receiver: Receiver, tries: int = 3) -> None:
    endpoint = {"name": name, "kind": "WEBHOOK", "url": receiver.url, "tries": tries}
    created = gw.data(CREATE_ENDPOINT, {"input": {**endpoint, "waitSeconds": 0}}, token=token)
    receiver.secret = created["createBusinessEventEndpoint"]["secret"]
    assert receiver.secret.startswith("fes_")


def activate(gw: Gateway, token: str, endpoint: str, le: str = "", event: str = CREATED) -> Any:
    variables = {"event": event, "endpoint": endpoint, "le": le}
    return gw.data(ACTIVATE, variables, token=token)["activateBusinessEvent"]


def test_webhooks_retry_sign_and_keep_what_failed(
    fresh_gateway: Callable[..., Gateway], receivers: Callable[[int], Receiver]
) -> None:
    gw = fresh_gateway()
    admin = gw.token(Role.ADMIN, sub="ops@contoso.com")
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    flaky, down, spare = receivers(2), receivers(10**6), receivers(0)
    webhook(gw, admin, "flaky", flaky)
    webhook(gw, admin, "down", down)
    webhook(gw, admin, "spare", spare)
    activation = activate(gw, admin, "flaky", "usmf")
    assert activation["legalEntity"] == "USMF" and activation["activatedBy"] == "ops@contoso.com"
    activate(gw, admin, "down")  # every legal entity

    gw.data(CREATE, {"input": customer("WH-1")}, token=writer)
    # the flaky endpoint: refused twice, taken the third time, every request signed
    tries = wait_for(lambda: flaky.events() if len(flaky.received) == 3 else None)
    event = tries[-1]
    assert [t["EventId"] for t in tries] == [event["EventId"]] * 3
    assert event["CustomerAccount"] == "WH-1" and event["BusinessEventLegalEntity"] == "USMF"
    assert all(r["signed"] for r in flaky.received)
    assert flaky.received[0]["headers"]["X-Fno-Event-Id"] == event["EventId"]
    log = wait_for(
        lambda: gw.data(DELIVERIES, {"endpoint": "flaky"}, token=admin)["businessEventDeliveries"]
    )
    assert log == [
        {
            "controlNumber": event["ControlNumber"],
            "businessEvent": CREATED,
            "delivered": True,
            "tries": 3,
            "detail": "HTTP 200",
        }
    ]

    # the endpoint that is down: three tries, then the errors store, payload and all
    [failed] = wait_for(
        lambda: gw.data(ERRORS, {"endpoint": "down", "pending": True}, token=admin)[
            "businessEventErrors"
        ]
    )
    assert len(down.received) == 3
    assert failed["tries"] == 3 and failed["message"] == "HTTP 500: busy, try later"
    assert failed["payload"] == event or failed["payload"]["EventId"] != event["EventId"]
    assert failed["payload"]["CustomerAccount"] == "WH-1"

    # resent to another endpoint: delivered there, no longer pending, kept as resent
    [resent] = gw.data(RESEND, {"ids": [failed["id"]], "endpoint": "spare"}, token=admin)[
        "resendBusinessEventErrors"
    ]
    assert resent["outcome"] == {"delivered": True, "tries": 1, "detail": "HTTP 200"}
    assert spare.events()[0] == failed["payload"] and spare.received[0]["signed"]
    assert (
        gw.data(ERRORS, {"endpoint": "down", "pending": True}, token=admin)["businessEventErrors"]
        == []
    )
    [kept] = gw.data(ERRORS, {"endpoint": "down", "pending": False}, token=admin)[
        "businessEventErrors"
    ]
    assert kept["resentTo"] == "spare"

    # a test message, on request
    outcome = gw.data(TEST, {"endpoint": "spare"}, token=admin)["sendTestBusinessEvent"]
    assert outcome == {"delivered": True, "tries": 1, "detail": "HTTP 200"}
    test_event = spare.received[-1]["event"]
    assert test_event["BusinessEventId"] == "BusinessEventsTestEndpointBusinessEvent"
    assert test_event["InitiatingUser"] == "ops@contoso.com"


def test_activations_are_checked_and_kept(
    fresh_gateway: Callable[..., Gateway], receivers: Callable[[int], Receiver]
) -> None:
    gw = fresh_gateway(event_endpoints_per_event=2)
    admin = gw.token(Role.ADMIN, sub="ops@contoso.com")
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    first, second, third = receivers(0), receivers(0), receivers(0)
    for name, r in (("first", first), ("second", second), ("third", third)):
        webhook(gw, admin, name, r)

    def refused(event: str, endpoint: str, le: str = "") -> tuple[str, str]:
        error = gw.error(ACTIVATE, {"event": event, "endpoint": endpoint, "le": le}, token=admin)
        return error["extensions"]["code"], error["message"]

    assert refused("NoSuchBusinessEvent", "first")[0] == "NOT_FOUND"
    assert refused(CREATED, "nowhere")[0] == "NOT_FOUND"
    assert refused(CREATED, "first", "XXXX") == (
        "BAD_USER_INPUT",
        "legalEntity: F&O has no legal entity 'XXXX'",
    )
    only_demf = activate(gw, admin, "first", "demf")
    activate(gw, admin, "second", "", "CustomerV3CreatedDataEvent")  # a data event
    activate(gw, admin, "second")
    code, message = refused(CREATED, "first", "demf")
    assert code == "CONFLICT" and "already activated" in message
    code, message = refused(CREATED, "third")
    assert code == "CONFLICT" and "GATEWAY_EVENT_ENDPOINTS_PER_EVENT=2" in message

    gw.data(CREATE, {"input": customer("WH-2")}, token=writer)  # a USMF customer
    wait_for(lambda: len(second.received) == 2)
    assert [e["BusinessEventId"] for e in (r["event"] for r in second.received)] == [
        CREATED,
        "CustomerV3CreatedDataEvent",
    ]
    assert first.received == []  # DEMF only

    deactivated = gw.data(
        "mutation($id: Int!) { deactivateBusinessEvent(id: $id) { active deactivatedBy } }",
        {"id": only_demf["id"]},
        token=admin,
    )["deactivateBusinessEvent"]
    assert deactivated == {"active": False, "deactivatedBy": "ops@contoso.com"}
    listed = "query($all: Boolean!) { businessEventActivations(includeInactive: $all) { id } }"
    assert len(gw.data(listed, {"all": False}, token=admin)["businessEventActivations"]) == 2
    assert len(gw.data(listed, {"all": True}, token=admin)["businessEventActivations"]) == 3
    activate(gw, admin, "third")  # room again

    # endpoints: plain http only to this machine; a name once; deleted when unused
    bad = gw.error(
        CREATE_ENDPOINT,
        {"input": {"name": "far", "kind": "WEBHOOK", "url": "http://example.com/hook"}},
        token=admin,
    )
    assert bad["extensions"]["code"] == "BAD_USER_INPUT" and "https://" in bad["message"]
    again = gw.error(
        CREATE_ENDPOINT,
        {"input": {"name": "first", "kind": "WEBHOOK", "url": first.url}},
        token=admin,
    )
    assert again["extensions"]["code"] == "CONFLICT"
    delete = 'mutation { deleteBusinessEventEndpoint(name: "second") }'
    assert gw.error(delete, token=admin)["extensions"]["code"] == "CONFLICT"
    assert gw.data('mutation { deleteBusinessEventEndpoint(name: "first") }', token=admin)

    # only admins
    for token in (writer, gw.token(Role.READER)):
        assert gw.error(TEST, {"endpoint": "third"}, token=token)["extensions"]["code"] == (
            "FORBIDDEN"
        )
        listing = gw.error("{ businessEventEndpoints { name } }", token=token)
        assert listing["extensions"]["code"] == "FORBIDDEN"


def test_the_broker_gets_each_event_with_its_headers(
    fresh_gateway: Callable[..., Gateway], nats_url: str
) -> None:
    gw = fresh_gateway()
    admin = gw.token(Role.ADMIN, sub="ops@contoso.com")
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    subject = f"fno.events.test{uuid.uuid4().hex[:8]}"
    created = gw.data(
        CREATE_ENDPOINT,
        {"input": {"name": "bus", "kind": "BROKER", "url": nats_url, "subject": subject}},
        token=admin,
    )["createBusinessEventEndpoint"]
    assert created["secret"] is None and created["endpoint"]["kind"] == "BROKER"
    activate(gw, admin, "bus", "usmf")
    gw.data(CREATE, {"input": customer("NB-1")}, token=writer)
    outcome = gw.data(TEST, {"endpoint": "bus"}, token=admin)["sendTestBusinessEvent"]
    assert outcome["delivered"] and outcome["detail"].startswith("stream FNO_")

    async def consume() -> list[Any]:
        connection = await nats.connect(nats_url)
        try:
            js = connection.jetstream()
            pull = await js.pull_subscribe(subject, durable=None)
            messages: list[Any] = []
            for _ in range(50):
                messages += await pull.fetch(2 - len(messages), timeout=1)
                if len(messages) >= 2:
                    break
            return messages
        finally:
            await connection.close()

    messages = asyncio.run(consume())
    by_event = {m.headers["Fno-Business-Event"]: m for m in messages}
    created_message = by_event[CREATED]
    event = json.loads(created_message.data)
    assert event["CustomerAccount"] == "NB-1"
    assert created_message.headers["Fno-Event-Id"] == event["EventId"]
    assert created_message.headers["Fno-Legal-Entity"] == "USMF"
    assert created_message.headers["Fno-Category"] == event_category(gw, CREATED)
    assert "BusinessEventsTestEndpointBusinessEvent" in by_event


def event_category(gw: Gateway, event: str) -> str:
    catalog = gw.data("{ businessEventCatalog { id category } }", token=gw.token(Role.READER))
    return str(next(e["category"] for e in catalog["businessEventCatalog"] if e["id"] == event))


@pytest.fixture(scope="session")
def nats_url() -> str:
    async def probe() -> None:
        connection = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        unavailable(f"NATS at {NATS_URL} is not reachable: {exc!r}")
    return NATS_URL


def test_activated_events_of_rows_written_straight_into_fno(
    fresh_gateway: Callable[..., Gateway], receivers: Callable[[int], Receiver]
) -> None:
    """Activating an event tracks the table of the entity that raises it: a customer
    inserted by another F&O client is delivered like one created through GraphQL."""
    gw = fresh_gateway()
    admin = gw.token(Role.ADMIN, sub="ops@contoso.com")
    hook = receivers(0)
    webhook(gw, admin, "crm", hook)
    activate(gw, admin, "crm", "usmf")
    wait_for(lambda: "CustomerV3" in gw.runtime.tracker._installed)  # the table is tracked
    run_sql(gw.fno_url, INSERT_CUSTOMER, params={"account": "DIRECT-1"})
    [event] = wait_for(hook.events)
    assert (event["CustomerAccount"], event["InitiatingUser"]) == ("DIRECT-1", "")
