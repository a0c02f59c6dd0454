"""OpenTelemetry traces: a real gateway process exports its spans over OTLP/HTTP to a
collector in the test, continuing the trace the caller started."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.conftest import Databases
from tests.gateway.test_replicas import bearer, shared_stores
from tests.gateway.test_setup_kill import Server


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span it is sent, with its service."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                for resource in request.resource_spans:
                    service = {a.key: a.value.string_value for a in resource.resource.attributes}
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            collector.spans.append(
                                {
                                    "service": service.get("service.name"),
                                    "name": span.name,
                                    "trace": span.trace_id.hex(),
                                    "id": span.span_id.hex(),
                                    "parent": span.parent_span_id.hex(),
                                    "attributes": {
                                        a.key: getattr(a.value, a.value.WhichOneof("value"))
                                        for a in span.attributes
                                    },
                                }
                            )
                body = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def trace(self, trace_id: str, spans: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 20
        while len(found := [s for s in self.spans if s["trace"] == trace_id]) < spans:
            assert time.monotonic() < deadline, f"spans of the trace: {found}"
            time.sleep(0.05)
        return found


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.mark.parametrize("path", ["fast", "generic"])
def test_requests_are_traced_with_their_operation_and_statements(
    path: str, databases: Databases, collector: Collector, tmp_path: Path
) -> None:
    server = Server(
        {
            **shared_stores(databases),
            "GATEWAY_DATA_DIR": str(tmp_path),
            "GATEWAY_TRACES": "true",
            "GATEWAY_FAST_READS": str(path == "fast").lower(),
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_SERVICE_NAME": "gateway-under-test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    try:
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        response = httpx.post(
            server.url,
            json={
                "query": 'query TopCustomers { customersV3(company: "USMF", first: 2) '
                "{ nodes { customerAccount } } }",
                "operationName": "TopCustomers",
            },
            headers={
                "Authorization": f"Bearer {bearer('reader')}",
                "traceparent": f"00-{trace_id}-{caller_span}-01",
            },
        )
        assert response.status_code == 200 and "errors" not in response.json()
        spans = collector.trace(trace_id, 2)
        httpx.get(server.url.replace("/graphql", "/healthz"))  # not traced
    finally:
        server.stop()
    (request,) = [s for s in spans if s["parent"] == caller_span]  # continues the caller's
    assert request["service"] == "gateway-under-test"
    assert request["attributes"]["graphql.operation.name"] == "TopCustomers"
    assert request["attributes"]["fno.read_path"] == path
    statements = [s for s in spans if s["parent"] == request["id"]]
    assert any(
        "custcustomerv3entity" in s["attributes"].get("db.statement", "") for s in statements
    )
    assert not [s for s in collector.spans if "healthz" in s["name"]]
