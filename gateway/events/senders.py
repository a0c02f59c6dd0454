"""Sending one event to one endpoint: a signed HTTPS request, or a message published
to a NATS JetStream subject. A failure raises `DeliveryFailed` with what the endpoint
said; retrying is the dispatcher's business.

Webhook requests carry the event as the JSON body and:

  X-Fno-Event-Id, X-Fno-Business-Event   what it is
  X-Fno-Timestamp                        seconds since 1970, when it was signed
  X-Fno-Signature                        sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">

A receiver recomputes the signature with the endpoint's secret and refuses a request
whose signature differs or whose timestamp is old (a replay).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import nats
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError

from gateway.kernel.errors import UpstreamFailed

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Message:
    event_id: str
    business_event: str
    category: str
    legal_entity: str
    body: bytes  # the payload, as JSON


class Sender(Protocol):
    async def send(self, message: Message) -> str:
        """Deliver it; what the endpoint answered. Raises DeliveryFailed."""
        ...


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class WebhookSender:
    def __init__(self, client: httpx.AsyncClient, url: str, secret: str) -> None:
        self._client = client
        self._url = url
        self._secret = secret

    async def send(self, message: Message) -> str:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Fno-Event-Id": message.event_id,
            "X-Fno-Business-Event": message.business_event,
            "X-Fno-Timestamp": timestamp,
            "X-Fno-Signature": signature(self._secret, timestamp, message.body),
        }
        try:
            answer = await self._client.post(self._url, content=message.body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{self._url} did not answer: {exc!r}") from None
        if not answer.is_success:
            said = answer.text.strip().replace("\n", " ")[:200]
            raise DeliveryFailed(f"HTTP {answer.status_code}" + (f": {said}" if said else ""))
        return f"HTTP {answer.status_code}"


async def _client_error(exc: Exception) -> None:
    """The NATS client's own reports (it prints them, with tracebacks, unless told
    otherwise): what matters reaches the delivery as its failure."""
    log.debug("NATS client: %r", exc)


class Brokers:
    """One connection per NATS server, opened when first needed and kept."""

    def __init__(self) -> None:
        self._connections: dict[str, Any] = {}

    async def jetstream(self, url: str) -> Any:
        connection = self._connections.get(url)
        if connection is None or connection.is_closed:
            try:
                # three tries half a second apart: a broker that is down fails the
                # delivery in 1.5 s (the client's default pause made it 6), and the
                # delivery's own retries take it from there
                connection = await nats.connect(
                    url,
                    connect_timeout=5,
                    max_reconnect_attempts=3,
                    reconnect_time_wait=0.5,
                    allow_reconnect=True,
                    error_cb=_client_error,
                )
            except (OSError, NatsError) as exc:
                raise DeliveryFailed(f"the broker at {url} is unreachable: {exc!r}") from None
            self._connections[url] = connection
        return connection.jetstream()

    async def ensure_stream(self, url: str, subject: str) -> str:
        """The JetStream stream that keeps the subject's messages (made if none does)."""
        try:
            js = await self.jetstream(url)
            try:
                return str(await js.find_stream_name_by_subject(subject))
            except NotFoundError:
                name = "FNO_" + re.sub(r"[^A-Za-z0-9_-]", "_", subject).upper()
                await js.add_stream(name=name, subjects=[subject])
                return name
        except DeliveryFailed as exc:
            raise UpstreamFailed(exc.message) from None
        except NatsError as exc:
            raise UpstreamFailed(f"the broker at {url} refused the stream: {exc!r}") from None

    async def close(self) -> None:
        for connection in self._connections.values():
            if not connection.is_closed:
                await connection.close()
        self._connections.clear()


class BrokerSender:
    def __init__(self, brokers: Brokers, url: str, subject: str) -> None:
        self._brokers = brokers
        self._url = url
        self._subject = subject

    async def send(self, message: Message) -> str:
        js = await self._brokers.jetstream(self._url)
        headers = {
            "Fno-Category": message.category,
            "Fno-Business-Event": message.business_event,
            "Fno-Event-Id": message.event_id,
            "Fno-Legal-Entity": message.legal_entity,
            "Nats-Msg-Id": message.event_id,  # JetStream drops a resend it already holds
        }
        try:
            ack = await js.publish(self._subject, message.body, headers=headers, timeout=10)
        except (OSError, NatsError) as exc:
            raise DeliveryFailed(f"the broker did not take it: {exc!r}") from None
        return f"stream {ack.stream}, sequence {ack.seq}" + (
            " (duplicate)" if ack.duplicate else ""
        )
