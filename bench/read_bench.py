"""Read benchmark: the gateway under uvicorn on a PostgreSQL demo store at scale.

    .venv/bin/python bench/read_bench.py --scale 100 --seconds 10 --concurrency 16

Builds (once) a demo store in the database `fno_bench_<scale>` on the server named by
--pg (default the machine's PostgreSQL), starts `fno-gateway serve` against it, and
prints requests per second with p50/p99 latency for:
  (a) 20 customers with 5 fields;
  (b) customers(first: 20) → salesOrders(first: 5) → lines(first: 5);
  (c) 10,000 customers with 4 fields in one request (end-to-end time per request).
The load comes from wrk (Debian package `wrk`) when it is installed, else from an
asyncio httpx client; the table says which. Scenario (c) runs one request at a time,
so its latency is the end-to-end time of one request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from datasources.fno_demo.generate import build_demo_store
from datasources.sql.engine import create_engine

SCENARIOS = {
    "(a) 20 customers x 5 fields": """{ customersV3(company: "USMF", first: 20) { nodes {
        customerAccount organizationName creditLimit customerGroupId onHoldStatus } } }""",
    "(b) 20 customers > 5 orders > 5 lines": """{ customersV3(company: "USMF", first: 20) { nodes {
        customerAccount salesOrders(first: 5) { nodes { salesOrderNumber
          lines(first: 5) { nodes { itemNumber lineAmount } } } } } } }""",
    "(c) 10,000 customers x 4 fields": """{ customersV3(crossCompany: true, first: 10000) { nodes {
        customerAccount organizationName creditLimit dataAreaId } } }""",
}


async def ensure_store(admin: str, scale: float) -> str:
    name = f"fno_bench_{str(scale).replace('.', '_')}"
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        exists = (
            await conn.exec_driver_sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        ).first()
        if not exists:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await engine.dispose()
    if not exists:
        store = create_engine(url)
        started = time.perf_counter()
        rows = await build_demo_store(store, scale)
        print(f"built {rows:,} rows in {time.perf_counter() - started:.1f}s", flush=True)
        await store.dispose()
    return url


async def load(url: str, query: str, seconds: float, concurrency: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await client.post(url, json={"query": query})
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200 or "errors" in response.json():
                    raise SystemExit(f"request failed: {response.text[:300]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("BODY_FILE")):read("*a")
"""


def wrk(url: str, query: str, seconds: float, concurrency: int) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms, requests, as measured by wrk."""
    folder = Path(tempfile.mkdtemp(prefix="fno-wrk-"))
    (folder / "post.lua").write_text(WRK_SCRIPT)
    (folder / "body.json").write_text(json.dumps({"query": query}))
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(concurrency),
            "-d",
            f"{int(seconds)}s",
            "--latency",
            "-s",
            str(folder / "post.lua"),
            url,
        ],
        env={**os.environ, "BODY_FILE": str(folder / "body.json")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"requests failed:\n{out}")

    def latency(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, latency("50"), latency("99"), requests


def python_client(
    url: str, query: str, seconds: float, concurrency: int
) -> tuple[float, float, float, int]:
    asyncio.run(load(url, query, 2, concurrency))  # warm-up
    latencies = sorted(asyncio.run(load(url, query, seconds, concurrency)))
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return len(latencies) / seconds, statistics.median(latencies) * 1000, p99, len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "GATEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--scale", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    fno_url = asyncio.run(ensure_store(args.pg, args.scale))
    data = Path(tempfile.mkdtemp(prefix="fno-bench-"))
    env = {
        **os.environ,
        "GATEWAY_FNO_URL": fno_url,
        "GATEWAY_DATA_DIR": str(data),
        "GATEWAY_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "fno-gateway"), "serve", "--port", str(args.port)],
        env=env,
    )
    url = f"http://127.0.0.1:{args.port}/graphql"
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{args.port}/healthz")
                break
            except httpx.ConnectError:
                time.sleep(0.2)
        measure = wrk if shutil.which("wrk") else python_client
        tool = "wrk" if measure is wrk else "httpx (install wrk for a lighter load tool)"
        print(f"scale {args.scale}, concurrency {args.concurrency}, {args.seconds}s each; {tool}")
        print(f"{'scenario':42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9}")
        for name, query in SCENARIOS.items():
            concurrency = 1 if name.startswith("(c)") else args.concurrency
            if measure is wrk:
                wrk(url, query, 2, concurrency)  # warm-up
            rate, p50, p99, count = measure(url, query, args.seconds, concurrency)
            print(f"{name:42} {rate:8.1f} {p50:8.1f} {p99:8.1f} {count:9d}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
