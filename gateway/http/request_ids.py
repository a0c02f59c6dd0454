"""Request and correlation ids: each request gets an id (the caller's `X-Request-Id`
if it is a sane one, else a new one), answered in `X-Request-Id` and carried by every
log line written while it is served; `X-Correlation-Id` (default: the request id) ties
the requests of one piece of work together across services."""

from __future__ import annotations

import itertools
import re
import secrets
from typing import Any

from gateway.logs import correlation_id, request_id

_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# ids made here: this process's random prefix and a count (unique without a system
# call per request, as a random id per request would cost)
_PREFIX = secrets.token_hex(8)
_COUNT = itertools.count(1)


class RequestIds:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = _given(headers.get(b"x-request-id")) or f"{_PREFIX}{next(_COUNT):016x}"
        request_token = request_id.set(rid)
        correlation_token = correlation_id.set(_given(headers.get(b"x-correlation-id")) or rid)
        answered = (b"x-request-id", rid.encode())

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), answered]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            request_id.reset(request_token)
            correlation_id.reset(correlation_token)


def _given(value: bytes | None) -> str | None:
    return value.decode() if value is not None and _SANE.fullmatch(value) else None
