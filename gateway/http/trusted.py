"""Trusted documents (persisted queries): the operations a deployment's clients were
built with, listed in a manifest by the SHA-256 of their text.

A client may send a document's id instead of its text (`documentId: "sha256:<hex>"`,
or Apollo's `extensions.persistedQuery.sha256Hash`); with
`GATEWAY_TRUSTED_DOCUMENTS_ONLY`, any document not in the manifest is refused, whether
sent over HTTP or WebSocket. The manifest is GraphQL Codegen's (`{hash: text}`) or
Apollo's persisted query manifest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from gateway.http.fast_lane import ASGIApp, Receive, Scope, Send, read_body, replay
from gateway.http.limits import refuse
from gateway.kernel.errors import BadUserInput, GatewayError, LimitExceeded


class DocumentNotFound(GatewayError):
    code = "PERSISTED_QUERY_NOT_FOUND"


class TrustedDocuments:
    def __init__(self, manifest: Path, only: bool) -> None:
        raw = orjson.loads(manifest.read_bytes())
        if isinstance(raw, dict) and isinstance(raw.get("operations"), list):  # Apollo's
            raw = {op["id"]: op["body"] for op in raw["operations"]}
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise ValueError(f"{manifest}: not a manifest of documents by their SHA-256")
        self.documents = {_hex(key): text for key, text in raw.items()}
        self.only = only

    def resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        """The request's parameters with the document's text in `query`; raises if the
        id is unknown, or if only trusted documents may run and this is not one."""
        extensions = params.get("extensions")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        given = params.get("documentId") or (
            persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        )
        if given is not None:
            text = self.documents.get(_hex(str(given)))
            if text is None:
                raise DocumentNotFound(f"no trusted document has the id {given!r}")
            rest = {k: v for k, v in params.items() if k not in ("documentId", "extensions")}
            return {**rest, "query": text}
        if self.only:
            self.check(params.get("query"))
        return params

    def check(self, query: object) -> None:
        """Refuse a document's text unless it is trusted (only-trusted mode)."""
        digest = hashlib.sha256(query.encode()).hexdigest() if isinstance(query, str) else ""
        if self.only and digest not in self.documents:
            raise LimitExceeded(
                "only trusted documents may run here (GATEWAY_TRUSTED_DOCUMENTS_ONLY): send "
                "the documentId of one your client was built with",
                limit="GATEWAY_TRUSTED_DOCUMENTS_ONLY",
            )


def _hex(key: str) -> str:
    return key.removeprefix("sha256:").lower()


class TrustedLane:
    """Puts the text of a trusted document into a request that names it by id, and
    refuses other documents when only trusted ones may run, before anything else
    reads the request."""

    def __init__(self, app: ASGIApp, documents: TrustedDocuments, path: str) -> None:
        self.app = app
        self.documents = documents
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive) if scope["method"] == "POST" else b""
        try:
            scope, body = self._resolved(scope, body)
        except GatewayError as exc:
            await refuse(send, 400, exc)
            return
        posted = scope["method"] == "POST"
        await self.app(scope, replay(body, receive) if posted else receive, send)

    def _resolved(self, scope: Scope, body: bytes) -> tuple[Scope, bytes]:
        """The request with a named document's text in it (checked in only-trusted mode)."""
        if scope["method"] == "GET":
            params: dict[str, Any] = dict(parse_qsl(scope["query_string"].decode()))
            if not params.keys() & {"query", "documentId", "extensions"}:
                return scope, body  # the playground's page
            if "extensions" in params:
                try:
                    params["extensions"] = orjson.loads(params["extensions"])
                except orjson.JSONDecodeError:
                    raise BadUserInput("extensions: not JSON") from None
            resolved = self.documents.resolve(params)
            if resolved is not params:
                scope = {**scope, "query_string": urlencode(resolved).encode()}
            return scope, body
        if scope["method"] != "POST":
            return scope, body
        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None  # the endpoint says what is wrong with it
        if not isinstance(parsed, dict):
            self.documents.check(None)  # names no document: refused in only-trusted mode
            return scope, body
        resolved = self.documents.resolve(parsed)
        if resolved is parsed:
            return scope, body
        body = orjson.dumps(resolved)
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        return {**scope, "headers": headers}, body
