"""A real OData v4 service shaped like Dynamics 365 F&O's `/data` (or Dataverse's Web
API), for testing an OData datasource.

It serves the demo store's rows (read once from a SQL store) through odatapy's
in-memory service, and adds what odatapy does not know about F&O: bearer tokens
from a fake Entra ID token endpoint, company scoping (`cross-company=true`),
navigation derived from referential constraints, and fault injection. Shaped like
Dataverse, it serves the native tables a linked environment has (empty, or seeded),
with odatapy's change tracking (`Prefer: odata.track-changes`, delta links).

It overrides a few private hooks of odatapy's in-memory processor (`_related`,
`_resolve`, `_assign_keys`, `_serializer`), so it needs odatapy 5.3.0 exactly.

    with start("sqlite:////tmp/x/fno.db", page_size=100) as peer:
        httpx.get(peer.url + "CustomersV3", headers={"Authorization": "Bearer peer-token"})
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, parse_qsl, quote, unquote_plus, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from odatapy.data import Entity, Property, ValueType
from odatapy.edm.json_value import JsonNumber, decimal_text
from odatapy.edm.model import Edm, EdmEntitySet, EdmProperty
from odatapy.edm.xml_io import XmlEdmProvider
from odatapy.server import OData
from odatapy.server.adapters import ODataWSGIApp
from odatapy.server.inmemory import InMemoryDataStore, InMemoryProcessor
from odatapy.server.processor import CustomETagSupport
from odatapy.server.serializer.json_serializer import ODataJsonSerializer
from sqlalchemy import MetaData, select

from datasources.dataverse.tables import NATIVE_TABLES
from datasources.fno_demo.entities import DEMO_ENTITIES
from datasources.sql.engine import create_engine
from datasources.sql.tables import entity_table
from gateway.kernel.catalog import EntityMetadata
from tests.peers.odata.make_metadata import SOLUTION

FOLDER = Path(__file__).parent
SERVICES: dict[str, tuple[tuple[EntityMetadata, ...], str]] = {  # seeded entities, mount
    "fno": (DEMO_ENTITIES, "/data"),
    "dataverse": (NATIVE_TABLES, "/api/data/v9.2"),
}
COMPANY_FIELD = "dataAreaId"
DEFAULT_COMPANY = "usmf"
CONCURRENCY = "Org.OData.Core.V1.OptimisticConcurrency"
_TOKEN_PATH = re.compile(r"^/[^/]+/oauth2/v2\.0/token$")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Row = dict[str, Any]


class _Store(InMemoryDataStore):
    """The in-memory store, plus indexes for navigation by referential constraint.

    Every write passes through `record_change`, so that is where the indexes are
    dropped and the written row is made whole again (see `_properties`).
    """

    def __init__(self, edm: Edm) -> None:
        super().__init__()
        self._edm = edm
        self._indexes: dict[tuple[str, tuple[str, ...]], dict[tuple[Any, ...], list[Entity]]] = {}

    def matching(
        self, entity_set: str, fields: tuple[str, ...], values: tuple[Any, ...]
    ) -> list[Entity]:
        """The rows of `entity_set` whose `fields` equal `values`."""
        with self.lock:
            index = self._indexes.get((entity_set, fields))
            if index is None:
                index = {}
                for entity in self.entities(entity_set):
                    index.setdefault(tuple(entity.get_value(f) for f in fields), []).append(entity)
                self._indexes[entity_set, fields] = index
            return list(index.get(values, ()))

    def set_entities(self, entity_set: str, entities: list[Entity]) -> None:
        with self.lock:
            super().set_entities(entity_set, entities)
            self._indexes.clear()

    def record_change(self, entity_set: str, entity: Entity, kind: str) -> None:
        with self.lock:
            edm_set = self._edm.get_entity_set(entity_set)
            if kind != "deleted" and edm_set is not None:
                values = {p.name: p.value for p in entity.properties if p.name}
                entity.properties = _properties(_declared(edm_set), values)
            self._indexes.clear()
            super().record_change(entity_set, entity, kind)

    def forget_inline(self) -> None:
        """Drop what `$expand` left on the stored rows. odatapy expands by hanging the
        (paged) related rows on the row itself and evaluates later filters on them
        before the relation: a `$top` in one request's expand would cut what `any()`
        sees in the next."""
        with self.lock:
            for entity_set in self._edm.entity_container.entity_sets:
                for entity in self.entities(entity_set.name):
                    if entity.navigation_links:
                        entity.navigation_links = []

    def restore(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            super().restore(snapshot)
            self._indexes.clear()


class _Processor(InMemoryProcessor, CustomETagSupport):
    """odatapy's in-memory processor with F&O's navigation, ETags and company scoping."""

    store: _Store

    def has_etag(self, entity_set_or_singleton: Any) -> bool:
        get = getattr(entity_set_or_singleton, "get_annotation", None)
        return get is not None and get(CONCURRENCY) is not None

    def _related(self, owner_set: Any, owner_key: str, owner: Entity, nav: Any) -> list[Entity]:
        # odatapy keeps links in a table fed by writes; F&O derives them from keys
        constraints = nav.referential_constraints
        target = self._nav_target_set(owner_set, nav.name)
        if not constraints or target is None:
            related: list[Entity] = super()._related(owner_set, owner_key, owner, nav)
            return related
        fields = tuple(c.referenced_property for c in constraints)
        values = tuple(owner.get_value(c.property) for c in constraints)
        return self.store.matching(target.name, fields, values)

    def read_entity_collection(self, *args: Any) -> None:
        with self.store.lock:  # the request's own, taken again: it serialises inside
            try:
                super().read_entity_collection(*args)
            finally:
                self.store.forget_inline()

    def read_entity(self, *args: Any) -> None:
        with self.store.lock:
            try:
                super().read_entity(*args)
            finally:
                self.store.forget_inline()

    def _resolve(self, request: Any, uri_info: Any, *, for_write: bool = False) -> Any:
        # F&O answers a collection with the caller's default company unless asked otherwise
        target = super()._resolve(request, uri_info, for_write=for_write)
        if (
            target.is_collection
            and target.top_level
            and target.entities is not None
            and _scoped(target.entity_set)
            and not _cross_company(request.raw_query_path)
        ):
            target.entities = [
                e for e in target.entities if e.get_value(COMPANY_FIELD) == DEFAULT_COMPANY
            ]
        return target

    def _assign_keys(self, entity_set: EdmEntitySet, entity: Entity) -> None:
        # a row created without a company lands in the caller's default company
        if _scoped(entity_set) and entity.get_value(COMPANY_FIELD) is None:
            entity.set_property(COMPANY_FIELD, DEFAULT_COMPANY, ValueType.PRIMITIVE, "Edm.String")
        super()._assign_keys(entity_set, entity)

    def _serializer(self, ct: Any, request: Any) -> Any:
        serializer = super()._serializer(ct, request)
        if isinstance(serializer, ODataJsonSerializer):
            exponential = serializer.exponential_decimals
            serializer._dumps = lambda obj: _dumps(obj, exponential)  # type: ignore[method-assign]
        return serializer


def _dumps(obj: Any, exponential: bool) -> str:
    """odatapy's JSON writer in one pass: its own runs a str.replace over the whole
    payload per Decimal, which makes a 1,000-line page take most of a second."""
    marker = f"__number_{uuid.uuid4().hex}_"
    numbers: list[str] = []

    def mark(value: Any) -> Any:
        if isinstance(value, JsonNumber | Decimal):
            text = value if isinstance(value, JsonNumber) else decimal_text(value, exponential)
            numbers.append(str(text))
            return f"{marker}{len(numbers) - 1}"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(obj), ensure_ascii=False, separators=(",", ":"))
    return re.sub(f'"{marker}(\\d+)"', lambda m: numbers[int(m[1])], text)


def _scoped(entity_set: EdmEntitySet | None) -> bool:
    return entity_set is not None and COMPANY_FIELD in entity_set.entity_type.key_predicate_names


_WILDCARD = re.compile(r"([\w/]+) eq '((?:[^']|'')*\*)'|([\w/]+) eq '(\*(?:[^']|'')*)'")


def _wildcards(query: str) -> str:
    """F&O matches `field eq '*text*'` (contains) and `'text*'` (starts with), ignoring
    case, as its SQL does; odatapy takes `*` literally, so such terms become functions."""
    if "*" not in unquote_plus(query):
        return query

    def rewrite(found: re.Match[str]) -> str:
        field = found.group(1) or found.group(3)
        pattern = (found.group(2) or found.group(4)).lower()
        if pattern.startswith("*") and pattern.endswith("*") and len(pattern) > 1:
            return f"contains(tolower({field}),'{pattern[1:-1]}')"
        if pattern.endswith("*"):
            return f"startswith(tolower({field}),'{pattern[:-1]}')"
        return f"endswith(tolower({field}),'{pattern[1:]}')"

    pairs = parse_qsl(query, keep_blank_values=True)
    rewritten = [(k, _WILDCARD.sub(rewrite, v) if k == "$filter" else v) for k, v in pairs]
    return urlencode(rewritten, quote_via=quote)


def _cross_company(query: str | None) -> bool:
    values = parse_qs(query or "").get("cross-company", [])
    return any(v.lower() == "true" for v in values)


def _declared(entity_set: EdmEntitySet) -> list[EdmProperty]:
    entity_type = entity_set.entity_type
    found = (entity_type.get_structural_property(n) for n in entity_type.property_names)
    return [p for p in found if p is not None]


def _properties(declared: list[EdmProperty], values: Mapping[str, Any]) -> list[Property]:
    """Every declared property, in declared order, as F&O always returns a row.

    Enums are kept by member name, as odatapy's `$filter` compares them, though the
    SQL store and odatapy's JSON reader hand over numbers. A property a write left
    out is null, or an enum's zero member when it cannot be null (F&O's default).
    """
    out = []
    for prop in declared:
        value = values.get(prop.name)
        enum = prop.enum_type
        if enum is None:
            out.append(Property(prop.name, value, ValueType.PRIMITIVE, prop.type_fqn))
            continue
        if value is None and prop.name not in values and not prop.nullable:
            value = 0
        value = None if value is None else enum.format_value(value)
        out.append(Property(prop.name, value, ValueType.ENUM, prop.type_fqn))
    return out


def _load_rows(seed_url: str, entities: tuple[EntityMetadata, ...]) -> dict[str, list[Row]]:
    """Every row of the entities, by entity set, keyed by field name."""

    async def read() -> dict[str, list[Row]]:
        engine = create_engine(seed_url)
        out: dict[str, list[Row]] = {}
        try:
            async with engine.connect() as conn:
                for entity in entities:
                    table = entity_table(entity, MetaData(), engine.dialect.name)
                    result = await conn.execute(select(table))
                    names = {f.column: f.name for f in entity.fields}
                    out[entity.collection_name] = [
                        {names[k]: v for k, v in row.items()} for row in result.mappings()
                    ]
        finally:
            await engine.dispose()
        return out

    # in a thread of its own, so `start` also works under a running event loop
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()


def _entities(rows: list[Row], entity_set: EdmEntitySet) -> list[Entity]:
    declared = _declared(entity_set)
    out = []
    for row in rows:
        entity = Entity(properties=_properties(declared, row))  # RecVersion is not declared
        entity.etag = 'W/"1"'  # odatapy's counter form; it bumps it on every write
        out.append(entity)
    return out


class _Quiet(WSGIRequestHandler):
    """wsgiref's handler without its per-request log line, passing the raw path on."""

    def get_environ(self) -> Environ:
        environ: Environ = super().get_environ()
        environ["RAW_URI"] = self.path  # still percent-encoded, as odatapy prefers
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    """A thread per connection, so a slow request does not hold the others up."""

    daemon_threads = True


class Peer:
    """A running F&O-shaped OData service; see `start`.

    `url` is the service root (ending in `/data/`, or `/api/data/v9.2/`), `authority`
    the origin the token endpoint lives under (`{authority}/{tenant}/oauth2/v2.0/token`).
    `requests` lists `(method, raw path and query)` of every service request, refused ones
    included; `tokens_issued` counts tokens the token endpoint handed out.
    """

    def __init__(
        self,
        odata_app: ODataWSGIApp,
        *,
        token: str,
        client_id: str,
        client_secret: str,
        token_seconds: int,
        mount: str = "/data",
    ) -> None:
        self._odata = odata_app
        self._mount = mount
        self._fixed_token = token
        self._client = (client_id, client_secret)
        self._token_seconds = token_seconds
        self._tokens: dict[str, float] = {}  # issued token -> monotonic expiry
        self._faults: list[tuple[int, int]] = []  # (status, retry_after) per coming request
        self._lock = threading.Lock()
        self.tokens_issued = 0
        self.requests: list[tuple[str, str]] = []
        self.relative_links = False  # next links relative to the service root, as CAP's
        self._server = make_server("127.0.0.1", 0, self, _Server, _Quiet)
        port = self._server.server_address[1]
        self.authority = f"http://127.0.0.1:{port}"
        self.url = f"{self.authority}{mount}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def fail_next(self, n: int, status: int = 429, retry_after: int = 1) -> None:
        """Answer the next `n` service requests with `status`, `Retry-After` and an OData
        error, before their token is looked at (as a throttling front end would)."""
        with self._lock:
            self._faults.extend([(status, retry_after)] * n)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == self._mount or path.startswith(f"{self._mount}/"):
            return self._data(environ, start_response)
        if _TOKEN_PATH.match(path) and environ["REQUEST_METHOD"] == "POST":
            return self._issue_token(environ, start_response)
        return _json(start_response, 404, {"error": {"code": "NotFound", "message": path}})

    def _data(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.requests.append((environ["REQUEST_METHOD"], environ.get("RAW_URI", "")))
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            status, retry_after = fault
            error = {"code": str(status), "message": f"Injected failure {status}."}
            return _json(
                start_response, status, {"error": error}, [("Retry-After", str(retry_after))]
            )
        if not self._authorized(environ.get("HTTP_AUTHORIZATION", "")):
            error = {"code": "Unauthorized", "message": "A valid bearer token is required."}
            return _json(start_response, 401, {"error": error}, [("WWW-Authenticate", "Bearer")])
        environ["QUERY_STRING"] = _wildcards(environ.get("QUERY_STRING", ""))
        if not self.relative_links:
            return self._odata(environ, start_response)
        answered: list[Any] = []
        body = b"".join(self._odata(environ, lambda *a: answered.append(a)))
        body = body.replace(f'"@odata.nextLink":"{self.url}'.encode(), b'"@odata.nextLink":"')
        status, headers, *_ = answered[0]
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        if secrets.compare_digest(token, self._fixed_token):
            return True
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def _issue_token(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(size).decode()).items()}

        def refuse(status: int, error: str, description: str) -> Iterable[bytes]:
            return _json(start_response, status, {"error": error, "error_description": description})

        if form.get("grant_type") != "client_credentials":
            return refuse(400, "unsupported_grant_type", "grant_type must be client_credentials.")
        if (form.get("client_id"), form.get("client_secret")) != self._client:
            return refuse(401, "invalid_client", "The client id or secret is wrong.")
        if not form.get("scope"):
            return refuse(400, "invalid_request", "The request body must contain 'scope'.")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + self._token_seconds
            self.tokens_issued += 1
        body = {"token_type": "Bearer", "expires_in": self._token_seconds, "access_token": token}
        return _json(start_response, 200, body)


def _json(
    start_response: StartResponse,
    status: int,
    body: object,
    headers: list[tuple[str, str]] | None = None,
) -> Iterable[bytes]:
    payload = json.dumps(body).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(payload))),
            *(headers or []),
        ],
    )
    return [payload]


def start(
    seed_url: str | None,
    *,
    service: str = "fno",
    solutions: Iterable[str] = (),
    token: str = "peer-token",
    page_size: int = 1000,
    client_id: str = "gateway",
    client_secret: str = "s3cret",
    token_seconds: int = 3600,
) -> Peer:
    """Serve the store at `seed_url` (the demo F&O store, or a Dataverse store; None:
    no rows) as the `service` ("fno" or "dataverse") would, on a free local port.
    A Dataverse peer lists `solutions` as installed.

    The rows are copied into memory: writes through the peer never reach the store.
    """
    entities, mount = SERVICES[service]
    odata = OData.new_instance(strict_deserialization=True)  # both refuse unknown properties
    provider = XmlEdmProvider.from_file(str(FOLDER / f"{service}.xml"))
    metadata = odata.create_service_metadata(provider, "4.0")
    edm = metadata.edm
    handler = odata.create_handler(metadata)
    rows = _load_rows(seed_url, entities) if seed_url else {}
    if service == "dataverse":
        rows[SOLUTION.collection_name] = [
            {"solutionid": str(uuid.uuid4()), "uniquename": name} for name in solutions
        ]
    store = _Store(edm)
    for name, entity_rows in rows.items():
        entity_set = edm.get_entity_set(name)
        assert entity_set is not None, f"{name} is missing from {service}.xml"
        store.set_entities(name, _entities(entity_rows, entity_set))
    handler.register(_Processor(store, page_size=page_size))
    app = ODataWSGIApp(handler, mount_path=mount)
    return Peer(
        app,
        mount=mount,
        token=token,
        client_id=client_id,
        client_secret=client_secret,
        token_seconds=token_seconds,
    )
