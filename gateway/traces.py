"""OpenTelemetry traces, when asked for (`GATEWAY_TRACES=true`, with the `traces` extra).

A server span per HTTP request and WebSocket connection, continuing the caller's W3C
`traceparent`, carrying the GraphQL operation's name and the read path that answered
it; under it a span per statement sent to a PostgreSQL store (the fast path's own pool
included). Spans go out over OTLP/HTTP where the standard variables say
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, …). Off, none of this is imported,
and requests pay nothing for it.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.middleware import Middleware

EXTRA = "pip install 'fno-gateway[traces]'"
UNTRACED = "healthz,readyz,metrics,static"  # probes and scrapes would drown the traces


class Tracing:
    """The tracer provider of this process, and what it installs into the application."""

    def __init__(self) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise SystemExit(f"GATEWAY_TRACES=true needs OpenTelemetry: {EXTRA} ({exc})") from exc
        service = os.environ.get("OTEL_SERVICE_NAME", "fno-gateway")
        self.provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(self.provider)
        AsyncPGInstrumentor().instrument(tracer_provider=self.provider)  # type: ignore[no-untyped-call]
        self._current_span = trace.get_current_span

    def middleware(self) -> Middleware:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return Middleware(
            OpenTelemetryMiddleware,
            excluded_urls=UNTRACED,
            exclude_spans=["receive", "send"],  # a span per message: noise, and a cost
            tracer_provider=self.provider,
        )

    def served(self, operation: str | None, path: str, seconds: float) -> None:
        """Name the request's span after the operation it carried."""
        span: Any = self._current_span()
        span.set_attribute("graphql.operation.name", operation or "")
        span.set_attribute("fno.read_path", path)

    def failed(self, code: str) -> None:
        span: Any = self._current_span()
        span.add_event("graphql.error", {"code": code})

    def close(self) -> None:
        """Send what is still buffered."""
        self.provider.shutdown()
