"""`create_app(settings)`: the Starlette application, wired from one settings object."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from gateway.http.fast_lane import FastLane
from gateway.http.graphql import graphql_endpoint
from gateway.http.limits import BodyLimit, RateLimit
from gateway.http.request_ids import RequestIds
from gateway.http.trusted import TrustedDocuments, TrustedLane
from gateway.http.websocket import GraphQLWebSocket
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.traces import Tracing

log = logging.getLogger("gateway")

READY_TIMEOUT = 2.0  # seconds a store has to answer a readiness probe

LOOPBACK_ORIGIN = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?"


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    tracing = Tracing() if settings.traces else None
    trusted = (
        TrustedDocuments(settings.trusted_documents, settings.trusted_documents_only)
        if settings.trusted_documents
        else None
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Runtime]]:
        runtime = await Runtime.open(settings)
        _app.state.runtime = runtime
        runtime.metrics.also = tracing
        # What start-up built (schema, catalog, engines) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise stall requests.
        # Collect young objects rarely: nearly all die by reference count (rows, events,
        # responses), and collecting often only promotes those still in flight to the
        # older generations, whose passes then stall every stream for tens of ms.
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        log.info("ready: GraphiQL at http://%s:%s/graphql", settings.host, settings.port)
        if settings.anonymous_reads and settings.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning(
                "anonymous reads are on while listening on %s: anyone who reaches this port "
                "can read F&O data; set GATEWAY_ANONYMOUS_READS=false",
                settings.host,
            )
        try:
            yield {"runtime": runtime}
        finally:
            await runtime.close()
            if tracing is not None:
                tracing.close()

    app: Starlette = Starlette(
        routes=[
            Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
            WebSocketRoute(
                "/graphql",
                GraphQLWebSocket(
                    lambda: app.state.runtime,
                    settings.ws_max_subscriptions,
                    settings.ws_connections_per_caller,
                    trusted,
                ),
            ),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Mount(
                "/static/graphiql",
                StaticFiles(packages=[("gateway", "http/static/graphiql")]),
            ),
        ],
        middleware=[
            *([tracing.middleware()] if tracing else []),
            Middleware(RequestIds),
            cors(settings),
            Middleware(BodyLimit, limit=settings.max_body_bytes),
            *([Middleware(RateLimit, rates=settings.rate_limit)] if settings.rate_limit else []),
            *([Middleware(TrustedLane, documents=trusted, path="/graphql")] if trusted else []),
            # fast reads skip routing and the rest
            Middleware(FastLane, runtime_of=lambda: app.state.runtime, path="/graphql"),
        ],
        lifespan=lifespan,
    )
    return app


class BrowserOnly(CORSMiddleware):
    """CORS for requests that carry an Origin (browsers'); the others, most of the
    traffic, pass straight through. A GET answered without an Origin still says that
    its answer depends on one (`Vary: Origin`), so that a shared cache does not hand it
    to a browser, nor a browser's answer to anyone else."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif any(name == b"origin" for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
        elif scope["method"] == "GET":
            await self.app(scope, receive, _varying(send))
        else:
            await self.app(scope, receive, send)


def _varying(send: Any) -> Any:
    async def varied(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"vary", b"Origin")]}
        await send(message)

    return varied


def cors(settings: Settings) -> Middleware:
    """Browser apps may call from the configured origins and from loopback pages (a
    local frontend in development), with their credentials; no other origin is let in."""
    return Middleware(
        BrowserOnly,
        allow_origins=settings.cors_origins,
        allow_origin_regex=LOOPBACK_ORIGIN,
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Accept"],
        max_age=600,
    )


async def healthz(_request: Request) -> Response:
    """Alive: the process answers (a load balancer's liveness probe)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready for traffic: the schema is built and every store answers; 503 with what
    is not, otherwise."""
    runtime: Runtime = request.app.state.runtime
    checks = {"schema": "ok" if runtime.schemas.current is not None else "not built yet"}
    probes = {"control store": runtime.control_ping, "F&O store": runtime.fno.ping}
    if runtime.linked.source is not None:
        probes["Dataverse store"] = runtime.linked.source.ping
    for name, ping in probes.items():
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await ping()
            checks[name] = "ok"
        except Exception as exc:  # any failure to answer is "not ready", said as it is
            checks[name] = f"unreachable: {type(exc).__name__}: {exc}"[:300]
    ready = all(state == "ok" for state in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


async def metrics(request: Request) -> Response:
    """Prometheus text exposition (see `gateway.metrics`)."""
    runtime: Runtime = request.app.state.runtime
    return Response(await runtime.render_metrics(), media_type=CONTENT_TYPE_LATEST)


def app_from_environment() -> Starlette:
    """For `uvicorn --factory gateway.app:app_from_environment` (several workers)."""
    return create_app(Settings())
