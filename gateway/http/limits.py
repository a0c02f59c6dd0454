"""Limits on HTTP requests, applied before anything reads them: the body's size, and
how many requests a caller may make (when a rate limit is set). Each refusal is a
GraphQL error whose `extensions.limit` names the setting to change."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import orjson
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from gateway.http.fast_lane import ASGIApp, Receive, Scope, Send
from gateway.kernel.errors import GatewayError, LimitExceeded


class _TooLarge(Exception):
    pass


async def refuse(
    send: Send, status: int, error: GatewayError, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer a request refused as a whole, before the application saw it."""
    body = orjson.dumps({"errors": [{"message": error.message, "extensions": error.extensions}]})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for a body past `limit` bytes: at once when its length is declared, else as
    soon as that many bytes have arrived."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:  # the server holds the body to its declared length
            if int(declared) > self.limit:
                await self._refuse(send)
            else:
                await self.app(scope, receive, send)
            return
        received = 0

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        message = (
            f"the request body is larger than the limit of {self.limit:,} bytes "
            "(GATEWAY_MAX_BODY_BYTES)"
        )
        await refuse(send, 413, LimitExceeded(message, limit="GATEWAY_MAX_BODY_BYTES"))


class RateLimit:
    """429, with Retry-After, for a caller past its rate: callers are told apart by
    their credentials (a token or API key), or by address when they send none. The
    count is this replica's own."""

    def __init__(self, app: ASGIApp, rates: str) -> None:
        self.app = app
        self.rates = parse_many(rates)
        self.rates_text = rates
        self.limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        caller = _caller(scope)
        for rate in self.rates:
            if not self.limiter.hit(rate, caller):
                reset = self.limiter.get_window_stats(rate, caller).reset_time
                wait = max(1, round(reset - time.time()))
                message = (
                    f"too many requests: the limit is {rate} per caller (GATEWAY_RATE_LIMIT "
                    f"is '{self.rates_text}'); try again in {wait} s"
                )
                headers = [(b"retry-after", str(wait).encode())]
                await refuse(send, 429, LimitExceeded(message, "GATEWAY_RATE_LIMIT"), headers)
                return
        await self.app(scope, receive, send)


def _caller(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return "credentials:" + hashlib.sha256(value).hexdigest()[:32]
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"
