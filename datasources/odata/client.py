"""HTTP to an OData service: a token for each request, throttling waited out, the
service's own words for every failure.

Tokens are OAuth2 client credentials from Microsoft Entra ID (see `tokens`). A 429
or 503 is retried after its `Retry-After` (or a growing pause) while the request's
time budget lasts, as F&O's service protection limits ask of clients; so is a
request that never reached the service. A write that may have reached it is not sent twice.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay
from tenacity.wait import wait_exponential_jitter

from datasources.odata import batch
from datasources.odata.endpoint import Endpoint
from datasources.odata.tokens import ClientCredentials
from gateway.kernel.errors import Conflict, UpstreamFailed

Json = dict[str, Any]
_RETRIED = (429, 503)
_backoff = wait_exponential_jitter(multiplier=0.2, max=10)


class Throttled(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response

    @property
    def retry_after(self) -> float | None:
        value = self.response.headers.get("retry-after", "")
        return float(value) if value.replace(".", "", 1).isdigit() else None


class ODataClient:
    def __init__(self, endpoint: Endpoint, timeout: float = 30.0, budget: float = 60.0) -> None:
        self.endpoint = endpoint
        self.budget = budget
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=20)
        self._http = httpx.AsyncClient(timeout=timeout, limits=limits, base_url=endpoint.root)
        self.tokens = (
            None if endpoint.token_url is None else ClientCredentials(endpoint, self._http)
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def get(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Json:
        response = await self.send("GET", url, params=params, headers=headers, idempotent=True)
        if response.status_code == 404:  # a collection the service does not (or no longer) has
            raise UpstreamFailed(f"the OData service has no {url}: {_words(response)}")
        return loads(response)

    async def metadata(self) -> bytes:
        response = await self.send(
            "GET", "$metadata", headers={"Accept": "application/xml"}, idempotent=True
        )
        return response.content

    async def batch(self, parts: Sequence[batch.Part]) -> list[batch.Answer]:
        """Several requests in one round trip, each answered on its own."""
        content_type, content = batch.write(parts, dumps)
        response = await self.send(
            "POST",
            "$batch",
            content=content,
            headers={"Content-Type": content_type, "Prefer": batch.PREFER},
        )
        return batch.read(response.headers.get("content-type", ""), response.text, len(parts))

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Json | None = None,
        content: str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
    ) -> httpx.Response:
        """The service's answer (2xx, or 404 for the caller to read), after waiting out
        throttling within the budget; otherwise UPSTREAM_FAILED or CONFLICT. The body is
        JSON (`body`), or as given (`content`, with its type among the headers)."""
        sent = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            content = dumps(body)
            sent["Content-Type"] = "application/json"
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: _transient(e, idempotent)),
            wait=_wait,
            stop=stop_after_delay(self.budget),
            reraise=True,
        )
        started = time.monotonic()
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._authorized(method, url, params, content, sent)
                    if response.status_code in _RETRIED:
                        raise Throttled(response)
        except Throttled as exc:
            waited = time.monotonic() - started
            raise UpstreamFailed(
                f"the OData service is throttling the gateway ({exc.response.status_code}) "
                f"and did not recover within {waited:.0f} s: {_words(exc.response)}"
            ) from None
        except httpx.TimeoutException:
            maybe = "" if idempotent else "; the change may have been applied"
            raise UpstreamFailed(f"the OData service did not answer in time{maybe}") from None
        except httpx.TransportError as exc:
            raise UpstreamFailed(f"the OData service could not be reached: {exc}") from None
        if response.status_code < 400 or response.status_code == 404:
            return response
        if response.status_code in (409, 412):
            raise Conflict(
                "the row was changed by someone else since it was read; read it again"
                if response.status_code == 412
                else f"the OData service refused the change: {_words(response)}"
            )
        raise UpstreamFailed(
            f"the OData service answered {response.status_code}: {_words(response)}"
        )

    async def _authorized(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        content: str | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        """Send with a current token; a 401 gets one fresh token and one more try (the
        token was revoked, or the clocks disagree)."""
        for renew in (False, True):
            sent = dict(headers)
            if self.tokens is not None:
                sent["Authorization"] = await self.tokens.header(renew)
            response = await self._http.request(
                method, url, params=params, content=content, headers=sent
            )
            if response.status_code != 401 or self.tokens is None:
                break
        if response.status_code == 401:
            raise UpstreamFailed(
                f"the OData service refused the gateway's credentials: {_words(response)}"
            )
        return response


def loads(response: httpx.Response | str) -> Json:
    """JSON with decimals kept exact (F&O sends amounts as JSON numbers)."""
    try:
        text = response if isinstance(response, str) else response.content
        found = json.loads(text, parse_float=Decimal)
    except ValueError:
        raise UpstreamFailed("the OData service answered with something that is not JSON") from None
    if not isinstance(found, dict):
        raise UpstreamFailed("the OData service answered with JSON that is not an object")
    return found


def _transient(exc: BaseException, idempotent: bool) -> bool:
    if isinstance(exc, Throttled):
        return True
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True  # never reached the service
    return idempotent and isinstance(exc, httpx.TransportError)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, Throttled) and exc.retry_after is not None:
        return exc.retry_after
    return float(_backoff(state))


def _words(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    return words(body) or response.reason_phrase


def words(body: Any) -> str:
    """Every message the service gave, outermost first (F&O nests the one that explains
    in `innererror.internalexception`), without stack traces."""
    messages: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "message" and isinstance(value, str) and value not in messages:
                    messages.append(value.strip())
                elif key != "stacktrace":
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(body)
    return " / ".join(m for m in messages if m)


def dumps(body: Json) -> str:
    """JSON with decimals written as exact numbers (json writes none: it knows floats)."""
    numbers: dict[str, str] = {}
    nonce = secrets.token_hex(4)

    def placeholder(value: Any) -> str:
        if not isinstance(value, Decimal):
            raise TypeError(f"{type(value).__name__} is not JSON")
        token = f"\x00{nonce}:{len(numbers)}"
        numbers[json.dumps(token)] = format(value, "f")
        return token

    text = json.dumps(body, default=placeholder)
    for token, digits in numbers.items():
        text = text.replace(token, digits)
    return text
