"""`create_app(settings)`: the Starlette application, wired from one settings object."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from gateway.http.fast_lane import FastLane
from gateway.http.graphql import graphql_endpoint
from gateway.http.websocket import GraphQLWebSocket
from gateway.runtime import Runtime
from gateway.settings import Settings

log = logging.getLogger("gateway")

LOOPBACK_ORIGIN = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?"


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Runtime]]:
        runtime = await Runtime.open(settings)
        _app.state.runtime = runtime
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

    app: Starlette = Starlette(
        routes=[
            Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", GraphQLWebSocket(lambda: app.state.runtime)),
            Route("/healthz", healthz),
            Mount(
                "/static/graphiql",
                StaticFiles(packages=[("gateway", "http/static/graphiql")]),
            ),
        ],
        middleware=[
            cors(settings),
            # fast reads skip routing and the rest
            Middleware(FastLane, runtime_of=lambda: app.state.runtime, path="/graphql"),
        ],
        lifespan=lifespan,
    )
    return app


def cors(settings: Settings) -> Middleware:
    """Browser apps may call from the configured origins and from loopback pages (a
    local frontend in development), with their credentials; no other origin is let in."""
    return Middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_origin_regex=LOOPBACK_ORIGIN,
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Accept"],
        max_age=600,
    )


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def app_from_environment() -> Starlette:
    """For `uvicorn --factory gateway.app:app_from_environment` (several workers)."""
    return create_app(Settings())
