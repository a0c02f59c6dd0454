"""Where business events go, in GraphQL (admins only): endpoints, activations, the
delivery log, the errors store with resend and payload download, and test messages."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, cast

import orjson
import strawberry
from strawberry.scalars import JSON

from gateway.auth import Role
from gateway.events.dispatch import Outcome
from gateway.events.endpoints import Activation, Endpoint, EndpointKind
from gateway.kernel.errors import BadUserInput
from gateway.kernel.events import event_named
from schema.context import RequestContext

BusinessEventEndpointKind = strawberry.enum(EndpointKind, name="BusinessEventEndpointKind")


def _admin(info: strawberry.Info) -> tuple[RequestContext, str]:
    context: RequestContext = info.context
    return context, context.require(Role.ADMIN).subject


@strawberry.type(name="BusinessEventEndpoint")
class EndpointView:
    name: str
    kind: BusinessEventEndpointKind  # type: ignore[valid-type]
    url: str
    subject: str | None = strawberry.field(description="BROKER: the JetStream subject.")
    tries: int = strawberry.field(description="Tries before an event goes to the errors store.")
    wait_seconds: int = strawberry.field(
        name="waitSeconds", description="The first pause between tries; it doubles, with jitter."
    )
    position: int = strawberry.field(description="The last ControlNumber it has handled.")
    created_at: dt.datetime = strawberry.field(name="createdAt")

    @classmethod
    def of(cls, e: Endpoint) -> EndpointView:
        return cls(
            name=e.name,
            kind=e.kind,
            url=e.url,
            subject=e.subject,
            tries=e.tries,
            wait_seconds=e.wait_seconds,
            position=e.position,
            created_at=e.created_at,
        )


@strawberry.type
class CreatedBusinessEventEndpoint:
    endpoint: EndpointView
    secret: str | None = strawberry.field(
        description="WEBHOOK: signs each request (X-Fno-Signature: sha256=HMAC of "
        "'<X-Fno-Timestamp>.<body>'). Shown this once; keep it."
    )


@strawberry.type(name="BusinessEventActivation")
class ActivationView:
    id: int
    business_event: str = strawberry.field(name="businessEvent")
    legal_entity: str = strawberry.field(name="legalEntity", description="Blank: every one.")
    endpoint: str
    active: bool
    activated_at: dt.datetime = strawberry.field(name="activatedAt")
    activated_by: str = strawberry.field(name="activatedBy")
    deactivated_at: dt.datetime | None = strawberry.field(name="deactivatedAt")
    deactivated_by: str | None = strawberry.field(name="deactivatedBy")

    @classmethod
    def of(cls, a: Activation) -> ActivationView:
        return cls(
            id=a.id,
            business_event=a.business_event,
            legal_entity=a.legal_entity,
            endpoint=a.endpoint,
            active=a.active,
            activated_at=a.activated_at,
            activated_by=a.activated_by,
            deactivated_at=a.deactivated_at,
            deactivated_by=a.deactivated_by,
        )


@strawberry.type
class BusinessEventDelivery:
    id: int
    endpoint: str
    control_number: int = strawberry.field(name="controlNumber", description="0: a test message.")
    event_id: str = strawberry.field(name="eventId")
    business_event: str = strawberry.field(name="businessEvent")
    delivered: bool
    tries: int
    detail: str = strawberry.field(description="The endpoint's answer, or why it failed.")
    milliseconds: int
    at: dt.datetime

    @classmethod
    def of(cls, row: Any) -> BusinessEventDelivery:
        return cls(**{name: getattr(row, name) for name in _DELIVERY})


_DELIVERY = [
    "id",
    "endpoint",
    "control_number",
    "event_id",
    "business_event",
    "delivered",
    "tries",
    "detail",
    "milliseconds",
    "at",
]


@strawberry.type
class BusinessEventError:
    id: int
    endpoint: str
    control_number: int = strawberry.field(name="controlNumber")
    event_id: str = strawberry.field(name="eventId")
    business_event: str = strawberry.field(name="businessEvent")
    legal_entity: str = strawberry.field(name="legalEntity")
    message: str
    tries: int
    at: dt.datetime
    resent_at: dt.datetime | None = strawberry.field(name="resentAt")
    resent_to: str | None = strawberry.field(name="resentTo")
    payload: JSON = strawberry.field(description="The event as it was sent (download).")

    @classmethod
    def of(cls, row: Any) -> BusinessEventError:
        return cls(
            id=row.id,
            endpoint=row.endpoint,
            control_number=row.control_number,
            event_id=row.event_id,
            business_event=row.business_event,
            legal_entity=row.legal_entity,
            message=row.message,
            tries=row.tries,
            at=row.at,
            resent_at=row.resent_at,
            resent_to=row.resent_to,
            payload=cast(JSON, orjson.loads(row.payload)),
        )


@strawberry.type
class DeliveryOutcome:
    delivered: bool
    tries: int
    detail: str
    milliseconds: int

    @classmethod
    def of(cls, outcome: Outcome) -> DeliveryOutcome:
        return cls(
            delivered=outcome.delivered,
            tries=outcome.tries,
            detail=outcome.detail,
            milliseconds=outcome.milliseconds,
        )


@strawberry.type
class ResentError:
    id: int
    outcome: DeliveryOutcome


@strawberry.input
class BusinessEventEndpointInput:
    name: str
    kind: BusinessEventEndpointKind  # type: ignore[valid-type]
    url: str = strawberry.field(description="https://… (WEBHOOK), nats://host:4222 (BROKER).")
    subject: str | None = None
    tries: int = 3
    wait_seconds: int = strawberry.field(default=1, name="waitSeconds")


# queries


@strawberry.field(name="businessEventEndpoints")
async def business_event_endpoints(info: strawberry.Info) -> list[EndpointView]:
    context, _ = _admin(info)
    return [EndpointView.of(e) for e in await context.control.endpoints.endpoints()]


@strawberry.field(
    name="businessEventActivations",
    description="What is activated; with includeInactive, the history of deactivated ones too.",
)
async def business_event_activations(
    info: strawberry.Info,
    include_inactive: Annotated[bool, strawberry.argument(name="includeInactive")] = False,
) -> list[ActivationView]:
    context, _ = _admin(info)
    found = await context.control.endpoints.activations(include_inactive)
    return [ActivationView.of(a) for a in found]


@strawberry.field(name="businessEventDeliveries", description="An endpoint's delivery log.")
async def business_event_deliveries(
    info: strawberry.Info, endpoint: str, after: int = 0, first: int = 100
) -> list[BusinessEventDelivery]:
    context, _ = _admin(info)
    if not 0 < first <= 1000:
        raise BadUserInput("first is between 1 and 1000")
    rows = await context.control.endpoints.deliveries(endpoint, after, first)
    return [BusinessEventDelivery.of(r) for r in rows]


@strawberry.field(
    name="businessEventErrors",
    description="Events an endpoint did not take after every try; pending: not resent yet.",
)
async def business_event_errors(
    info: strawberry.Info, endpoint: str | None = None, pending: bool = True
) -> list[BusinessEventError]:
    context, _ = _admin(info)
    return [
        BusinessEventError.of(r) for r in await context.control.endpoints.errors(endpoint, pending)
    ]


# mutations


@strawberry.mutation(name="createBusinessEventEndpoint")
async def create_business_event_endpoint(
    info: strawberry.Info, input: BusinessEventEndpointInput
) -> CreatedBusinessEventEndpoint:
    context, actor = _admin(info)
    e, secret = await context.control.endpoints.create(
        actor, input.name, input.kind, input.url, input.subject, input.tries, input.wait_seconds
    )
    return CreatedBusinessEventEndpoint(endpoint=EndpointView.of(e), secret=secret)


@strawberry.mutation(
    name="deleteBusinessEventEndpoint",
    description="Once no event is activated for it; its logs and errors stay.",
)
async def delete_business_event_endpoint(info: strawberry.Info, name: str) -> bool:
    context, _ = _admin(info)
    await context.control.endpoints.delete(name)
    return True


@strawberry.mutation(
    name="activateBusinessEvent",
    description="Send a business event (or data event) of a legal entity (blank: every one) "
    "to an endpoint, from now on.",
)
async def activate_business_event(
    info: strawberry.Info,
    event: str,
    endpoint: str,
    legal_entity: Annotated[str, strawberry.argument(name="legalEntity")] = "",
) -> ActivationView:
    context, actor = _admin(info)
    entities = {e.metadata.name: e.metadata for e in await context.catalog.entries(None, True)}
    activated = await context.control.endpoints.activate(
        actor,
        event,
        legal_entity,
        endpoint,
        lambda name: event_named(name, entities) is not None,
        await context.fno.companies(),
    )
    return ActivationView.of(activated)


@strawberry.mutation(
    name="deactivateBusinessEvent", description="Stop sending; the activation stays in history."
)
async def deactivate_business_event(info: strawberry.Info, id: int) -> ActivationView:
    context, actor = _admin(info)
    return ActivationView.of(await context.control.endpoints.deactivate(actor, id))


@strawberry.mutation(
    name="sendTestBusinessEvent",
    description="Send the endpoint a test message now, once; the outcome is also logged.",
)
async def send_test_business_event(info: strawberry.Info, endpoint: str) -> DeliveryOutcome:
    context, actor = _admin(info)
    return DeliveryOutcome.of(await context.control.dispatcher.test(endpoint, actor))


@strawberry.mutation(
    name="resendBusinessEventErrors",
    description="Send stored errors again as they were sent, to their endpoint or to another.",
)
async def resend_business_event_errors(
    info: strawberry.Info, ids: list[int], endpoint: str | None = None
) -> list[ResentError]:
    context, _ = _admin(info)
    results = await context.control.dispatcher.resend(ids, endpoint)
    return [ResentError(id=i, outcome=DeliveryOutcome.of(o)) for i, o in results]


QUERIES = [
    business_event_endpoints,
    business_event_activations,
    business_event_deliveries,
    business_event_errors,
]
MUTATIONS = [
    create_business_event_endpoint,
    delete_business_event_endpoint,
    activate_business_event,
    deactivate_business_event,
    send_test_business_event,
    resend_business_event_errors,
]
