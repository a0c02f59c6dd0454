"""The read fast lane: a GraphQL POST that the fast read path can answer is answered
straight from ASGI, before the web framework sees it.

A list read costs the store a fraction of a millisecond; routing, middleware and
request/response objects would cost more than that. The lane takes only what it is
sure of (POST /graphql, a JSON body, a media type it can answer, a caller it can
authenticate, a query the fast path covers) and hands everything else, with the body
it has read, to the application, whose generic path gives the answer or the error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.http.graphql import JSON, negotiate, refusal
from gateway.kernel.errors import GatewayError, LimitExceeded
from gateway.runtime import Runtime
from schema.fast import Answer

log = logging.getLogger("gateway.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = JSON.encode()


class FastLane:
    def __init__(self, app: ASGIApp, runtime_of: Callable[[], Runtime], path: str) -> None:
        self.app = app
        self.runtime_of = runtime_of
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
        accept = headers.get(b"accept")
        media_type = negotiate(accept.decode("latin-1") if accept else None)
        runtime = self.runtime_of()
        schema = runtime.schemas.current
        if (
            content_type != _JSON
            or media_type is None
            or schema is None
            or schema.fast is None
            or not runtime.settings.fast_reads
        ):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        started = time.perf_counter()
        answer = None
        try:
            authorization = headers.get(b"authorization")
            principal = await runtime.auth.authenticate(
                authorization.decode("latin-1") if authorization else None
            )
            answer = await schema.fast.execute_body(body, runtime.context(principal))
        except LimitExceeded as exc:  # refused now: the generic path would only repeat it
            runtime.metrics.failed(exc.code)
            answer = Answer(refusal(exc), None)
        except GatewayError:
            pass  # the generic path reports it, with its path and location
        except Exception:
            log.exception("fast read path failed; answering on the generic path")
        if answer is None:
            await self.app(scope, replay(body, receive), send)
            return
        response_headers = [
            (b"content-type", media_type.encode()),
            (b"content-length", str(len(answer.body)).encode()),
        ]
        # counted before sending: what watches the request (traces) ends with the response
        runtime.metrics.served(answer.operation, "fast", time.perf_counter() - started)
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": answer.body})


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the application: the body already read, then the connection's own."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
