"""GraphQL over WebSocket (graphql-transport-ws, and the older graphql-ws), for
subscriptions. The protocol is Strawberry's; this supplies the current schema and a
context whose caller comes from the connection_init payload's Authorization (or the
upgrade request's header).

Bad credentials do not close the socket without a word: every operation on it is
answered with an UNAUTHENTICATED error that says what is wrong, as over HTTP.

Limits: subscriptions at once per connection (one past it is answered with a
LIMIT_EXCEEDED error, the connection stays), and connections at once per caller (one
past it is closed with 1008, policy violation, the reason naming the setting). The
legacy protocol gets keep-alive messages; both get WebSocket pings from the server.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from graphql import GraphQLError, GraphQLFormattedError
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionErrorMessage,
    StartMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage as LegacyError

from gateway.http.trusted import TrustedDocuments
from gateway.kernel.errors import GatewayError, LimitExceeded, Unauthenticated
from gateway.runtime import Runtime
from schema.builder import GatewaySchema
from schema.context import RequestContext


class TooManyConnections(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refusal(
    view: Any, payload: Any, running: int, limit: int | None
) -> GraphQLFormattedError | None:
    """Why a new operation may not start on this connection (None: it may), after
    putting a trusted document's text in its payload."""
    trusted = cast(GraphQLWebSocket, view).trusted
    try:
        if trusted is not None:
            payload.update(trusted.resolve(dict(payload)))
        if limit is not None and running >= limit:
            raise LimitExceeded(
                f"this connection has {limit} subscriptions running, the most it may "
                "(GATEWAY_WS_MAX_SUBSCRIPTIONS): complete one, or open another connection",
                limit="GATEWAY_WS_MAX_SUBSCRIPTIONS",
            )
    except GatewayError as exc:
        return GraphQLError(exc.message, extensions=exc.extensions).formatted
    return None


class _TransportWS(BaseGraphQLTransportWSHandler[RequestContext, None]):
    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except TooManyConnections as exc:
            await self.websocket.close(code=1008, reason=exc.reason)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged:
            limit = self.max_subscriptions_per_connection
            error = _refusal(self.view, message["payload"], len(self.operations), limit)
            if error is not None:
                await self.send_message(
                    ErrorMessage(id=message["id"], type="error", payload=[error])
                )
                return
        await super().handle_subscribe(message)


class _LegacyWS(BaseGraphQLWSHandler[RequestContext, None]):
    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except TooManyConnections as exc:
            refused = ConnectionErrorMessage(
                type="connection_error", payload={"message": exc.reason}
            )
            await self.send_message(refused)
            await self.websocket.close(code=1008, reason=exc.reason)

    async def handle_start(self, message: StartMessage) -> None:
        if self.connection_acknowledged:
            limit = self.max_subscriptions_per_connection
            error = _refusal(self.view, message["payload"], len(self.tasks), limit)
            if error is not None:
                await self.send_message(LegacyError(type="error", id=message["id"], payload=error))
                return
        await super().handle_start(message)


class GraphQLWebSocket(GraphQL[RequestContext, None]):
    """Serves only WebSocket upgrades; plain HTTP goes to the GraphQL-over-HTTP view."""

    graphql_transport_ws_handler_class = _TransportWS
    graphql_ws_handler_class = _LegacyWS

    def __init__(
        self,
        runtime_of: Any,
        subscriptions: int = 100,
        connections_per_caller: int = 20,
        trusted: TrustedDocuments | None = None,
    ) -> None:
        self._runtime_of = runtime_of
        self.trusted = trusted
        self._connections_per_caller = connections_per_caller
        self._connections: dict[str, int] = {}  # open ones, by caller
        super().__init__(
            schema=None,  # type: ignore[arg-type]
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            keep_alive=True,  # the legacy protocol's "ka" messages
            keep_alive_interval=15,
            max_subscriptions_per_connection=subscriptions,
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        gauge = self._runtime().metrics.websockets
        gauge.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:
            gauge.dec()
            caller = scope.get("fno.caller")
            if caller is not None:
                self._connections[caller] -= 1
                if not self._connections[caller]:
                    del self._connections[caller]

    def _admit(self, scope: Any, context: RequestContext) -> None:
        """Count the connection against its caller's (once it says who it is)."""
        principal = context.principal
        client = scope.get("client")
        caller = (
            f"address:{client[0] if client else '?'}"
            if principal.anonymous
            else f"subject:{principal.subject}"
        )
        if self._connections.get(caller, 0) >= self._connections_per_caller:
            raise TooManyConnections(
                f"{self._connections_per_caller} connections are open with these credentials,"
                " the most allowed (GATEWAY_WS_CONNECTIONS_PER_CALLER)"
            )
        self._connections[caller] = self._connections.get(caller, 0) + 1
        scope["fno.caller"] = caller

    @property
    def schema(self) -> GatewaySchema:
        schema = self._runtime().schemas.current
        assert schema is not None
        return schema

    @schema.setter
    def schema(self, _value: object) -> None:
        pass  # the schema is the runtime's current one, read per connection

    def encode_json(self, data: object) -> str:
        """orjson, which passes events encoded once for all listeners through as they
        are; text, as the protocols want text frames."""
        return orjson.dumps(data).decode()

    def _runtime(self) -> Runtime:
        runtime: Runtime = self._runtime_of()
        return runtime

    async def get_context(self, request: Any, response: Any) -> RequestContext:
        runtime = self._runtime()
        context = runtime.context(runtime.auth.anonymous)
        if isinstance(request, WebSocket):
            await self._authenticate(context, request.headers.get("authorization"))
            context.websocket_scope = request.scope
        return context

    async def on_ws_connect(self, context: RequestContext) -> Any:
        params = context.connection_params or {}
        given = params.get("Authorization") or params.get("authorization")
        if given is not None:
            await self._authenticate(context, str(given))
        if context.websocket_scope is not None:
            self._admit(context.websocket_scope, context)
        return None

    async def _authenticate(self, context: RequestContext, authorization: str | None) -> None:
        if authorization is None:
            return
        try:
            context.principal = await self._runtime().auth.authenticate(authorization)
            context.rejection = None
        except Unauthenticated as exc:
            context.rejection = exc.message
