"""What operators watch: /metrics (Prometheus), /readyz and /healthz, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Databases, Gateway, _pg_execute, build_store, start_gateway
from tests.gateway.test_setup_kill import Server


def scrape(gw: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = gw.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_operations_errors_connections_and_backlog(
    databases: Databases, tmp_path: Path
) -> None:
    url = databases.new("sqlite")
    build_store(url, 0.02)
    gw, running = start_gateway(tmp_path, "sqlite", url)
    try:
        fast = 'query Customers { customersV3(company: "USMF", first: 2) { nodes { customerAccount } } }'
        for _ in range(3):
            assert "errors" not in gw.query(fast)
        assert "errors" not in gw.query("query Entities { entityCatalog { name } }")
        assert (
            gw.query("{ nope }")["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        )
        gw.query("query Many { legalEntities { totalCount } }", token="not a token")

        seen = scrape(gw)
        count = "fno_gateway_operation_seconds_count"
        assert seen[(count, (("operation", "Customers"), ("path", "fast")))] == 3
        assert seen[(count, (("operation", "Entities"), ("path", "generic")))] == 1
        assert seen[("fno_gateway_errors_total", (("code", "GRAPHQL_VALIDATION_FAILED"),))] == 1
        assert seen[("fno_gateway_errors_total", (("code", "UNAUTHENTICATED"),))] == 1
        assert seen[("fno_gateway_outbox_events", (("store", "fno"),))] == 0
        assert seen[("fno_gateway_event_delivery_errors", ())] == 0
        for state in ("running", "waiting", "retrying", "idle"):
            assert ("fno_gateway_jobs", (("state", state),)) in seen
        assert seen[("fno_gateway_websocket_connections", ())] == 0

        async def connected() -> float:
            ws_url = gw.url.replace("http://", "ws://") + "/graphql"
            async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                return await asyncio.to_thread(
                    lambda: scrape(gw)[("fno_gateway_websocket_connections", ())]
                )

        assert asyncio.run(connected()) == 1
        assert scrape(gw)[("fno_gateway_websocket_connections", ())] == 0
    finally:
        gw.client.close()
        running.stop()


def test_readyz_says_which_store_does_not_answer(databases: Databases, tmp_path: Path) -> None:
    url = databases.new("postgresql")
    build_store(url, 0.02)
    gw, running = start_gateway(tmp_path, "postgresql", url)
    name = url.rsplit("/", 1)[1]
    admin = databases.admin
    assert admin is not None
    try:
        assert gw.client.get("/healthz").json() == {"status": "ok"}
        ready = gw.client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready",
            "checks": {"schema": "ok", "control store": "ok", "F&O store": "ok"},
        }
        _pg_execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _pg_execute(
            admin,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )
        down = gw.client.get("/readyz")
        assert down.status_code == 503
        body = down.json()
        assert body["status"] == "not ready"
        assert body["checks"]["control store"] == "ok"
        assert body["checks"]["F&O store"].startswith("unreachable: ")
        assert gw.client.get("/healthz").status_code == 200  # alive, only not ready
    finally:
        _pg_execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        gw.client.close()
        running.stop()


def test_json_logs_carry_the_request_and_correlation_ids(tmp_path: Path) -> None:
    log_file = tmp_path / "gateway.log"
    env = {
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_DEMO_SCALE": "0.02",
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_LOG_LEVEL": "info",
        "GATEWAY_ANONYMOUS_READS": "true",
    }
    server = Server(env, output=log_file)
    try:
        query = {
            "query": '{ customersV3(company: "USMF", first: 1) { nodes { customerAccount } } }'
        }
        ids = {"X-Request-Id": "req-42", "X-Correlation-Id": "order-7"}
        given = httpx.post(server.url, json=query, headers=ids)
        assert given.headers["x-request-id"] == "req-42"
        made = httpx.post(server.url, json=query, headers={"X-Request-Id": "not sane!"})
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    access = [line for line in lines if line.get("request_id") == "req-42"]
    assert access and access[0]["correlation_id"] == "order-7"
    assert "POST /graphql" in access[0]["message"]
    started = [line for line in lines if line["logger"] == "gateway" and "ready" in line["message"]]
    assert started and started[0]["request_id"] is None  # not written while serving a request
