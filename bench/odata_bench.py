"""OData benchmark: the gateway's overhead over an OData service as its F&O store.

    .venv/bin/python bench/odata_bench.py --scale 0.1 --requests 300

It serves the demo store's rows from the F&O-shaped OData peer (odatapy, tests/peers),
starts `fno-gateway serve` on it, and sends two reads one at a time:
  (a) 20 customers with 5 fields;
  (b) customers(first: 20) → salesOrders(first: 5) → lines(first: 5).
Beside each, the very requests the gateway sent the service for it (captured from the
peer), sent straight to the service with httpx, one after another, as fast as a
client that knew them in advance could; the two alternate, round by round. The
overhead is each round's difference: the gateway's parsing, planning, rendering,
JSON and its own HTTP hop. The service's own time (odatapy is slow) is in both, so
only the difference is meaningful.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test peer, in tests/

from datasources.odata.endpoint import Endpoint
from datasources.odata.tokens import ClientCredentials
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.conftest import PEER_SECRET, build_store, odata_url
from tests.peers.odata.peer import start as start_peer

READS = {
    "(a) 20 customers x 5 fields": """{ customersV3(company: "USMF", first: 20) { nodes {
        customerAccount organizationName creditLimit customerGroupId onHoldStatus } } }""",
    "(b) 20 customers > 5 orders > 5 lines": """{ customersV3(company: "USMF", first: 20) {
        nodes { customerAccount salesOrders(first: 5) { nodes { salesOrderNumber
          lines(first: 5) { nodes { itemNumber lineAmount } } } } } } }""",
}
VISIBLE = ("CustomerV3", "SalesOrderHeaderV2", "SalesOrderLine")


async def show(settings: Settings) -> None:
    """Make the entities the reads need visible, as an administrator would."""
    runtime = await Runtime.open(settings)
    try:
        for name in VISIBLE:
            await runtime.catalog.set_visible(name, True)
    finally:
        await runtime.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def paired(
    graphql: str, query: str, service: str, requests: list[str], token: str, rounds: int
) -> tuple[list[float], list[float]]:
    """Each round: the read through the gateway, then the same service requests sent
    straight; alternating, so that both see the same state of the machine."""
    through, straight = [], []
    async with httpx.AsyncClient() as client:
        for _ in range(rounds):
            started = time.perf_counter()
            body = (await client.post(graphql, json={"query": query})).json()
            through.append(time.perf_counter() - started)
            assert "errors" not in body, body
            started = time.perf_counter()
            for path in requests:
                response = await client.get(service + path, headers={"Authorization": token})
                response.raise_for_status()
                response.json()
            straight.append(time.perf_counter() - started)
    return through, straight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args()
    os.environ.setdefault(PEER_SECRET, "s3cret")
    folder = Path(tempfile.mkdtemp(prefix="odata-bench-"))
    seed = f"sqlite:///{folder / 'seed.db'}"
    build_store(seed, args.scale)
    with start_peer(seed) as peer:
        env = {
            "GATEWAY_FNO_URL": odata_url(peer),
            "GATEWAY_DATA_DIR": str(folder),
            "GATEWAY_DEMO": "false",
            "GATEWAY_ANONYMOUS_READS": "true",
            "GATEWAY_LOG_LEVEL": "warning",
            "GATEWAY_PORT": str(args.port),
        }
        os.environ.update(env)
        asyncio.run(show(Settings()))
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env={**os.environ, **env}
        )
        try:
            graphql = f"http://127.0.0.1:{args.port}/graphql"
            for _ in range(200):
                try:
                    if httpx.get(f"http://127.0.0.1:{args.port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            token = asyncio.run(token_header(odata_url(peer)))
            columns = ("gateway p50/p99", "direct p50/p99", "overhead p50/p99")
            print(f"{'read':40} " + " ".join(f"{c:>18}" for c in columns))
            for label, query in READS.items():
                asyncio.run(paired(graphql, query, peer.url, [], token, 20))  # warm-up
                before = len(peer.requests)
                asyncio.run(paired(graphql, query, peer.url, [], token, 1))
                sent = [  # what one read asked of the service
                    path.removeprefix("/data/")
                    for _, path in peer.requests[before:]
                    if not path.startswith("/data/LegalEntities")
                ]
                rounds = asyncio.run(paired(graphql, query, peer.url, sent, token, args.requests))
                overhead = [g - d for g, d in zip(*rounds, strict=True)]
                cells = [percentiles(samples) for samples in (*rounds, overhead)]
                print(
                    f"{label:40} "
                    + " ".join(f"{p50 * 1e3:8.2f}/{p99 * 1e3:7.2f} ms" for p50, p99 in cells)
                    + f"   ({len(sent)} service request(s) each)"
                )
            print("goal: under 2 ms at p50; Microsoft quotes under 30 ms for virtual entities")
        finally:
            server.terminate()
            server.wait(10)


async def token_header(store_url: str) -> str:
    async with httpx.AsyncClient() as http:
        return await ClientCredentials(Endpoint.parse(store_url), http).header()


if __name__ == "__main__":
    main()
