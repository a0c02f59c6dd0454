"""GraphQL over WebSocket (graphql-transport-ws, and the older graphql-ws), for
subscriptions. The protocol is Strawberry's; this supplies the current schema and a
context whose caller comes from the connection_init payload's Authorization (or the
upgrade request's header).

Bad credentials do not close the socket without a word: every operation on it is
answered with an UNAUTHENTICATED error that says what is wrong, as over HTTP.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from gateway.kernel.errors import Unauthenticated
from gateway.runtime import Runtime
from schema.builder import GatewaySchema
from schema.context import RequestContext


class GraphQLWebSocket(GraphQL[RequestContext, None]):
    """Serves only WebSocket upgrades; plain HTTP goes to the GraphQL-over-HTTP view."""

    def __init__(self, runtime_of: Any) -> None:
        self._runtime_of = runtime_of
        super().__init__(
            schema=None,  # type: ignore[arg-type]
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
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
        return context

    async def on_ws_connect(self, context: RequestContext) -> Any:
        params = context.connection_params or {}
        given = params.get("Authorization") or params.get("authorization")
        if given is not None:
            await self._authenticate(context, str(given))
        return None

    async def _authenticate(self, context: RequestContext, authorization: str | None) -> None:
        if authorization is None:
            return
        try:
            context.principal = await self._runtime().auth.authenticate(authorization)
            context.rejection = None
        except Unauthenticated as exc:
            context.rejection = exc.message
