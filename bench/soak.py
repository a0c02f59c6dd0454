"""Soak: a real `fno-gateway serve` process on PostgreSQL under steady mixed load for
a long while: fast and generic reads, writes that raise events, and WebSocket
subscribers receiving them. Every --sample seconds it records the gateway's resident
memory, open file descriptors, asyncio tasks (from /metrics) and the PostgreSQL
connections of its stores. The verdict compares the end with the state after warm-up:
memory must grow less than 10 %, and descriptors, tasks and connections stay flat.

    .venv/bin/python bench/soak.py --minutes 10

Stores are fresh PostgreSQL databases on --pg, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.events_bench import drop_databases, fresh_database
from datasources.sql.engine import create_engine

FAST = '{ customersV3(company: "USMF", first: 20) { nodes { customerAccount creditLimit } } }'
GENERIC = """{ customersV3(company: "USMF", first: 10) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node {
    customerAccount salesOrders(first: 3) { nodes { salesOrderNumber } } } } } }"""
WRITE = """mutation($a: String!, $limit: Decimal!) {
  updateCustomerV3(dataAreaId: "USMF", customerAccount: $a, input: {creditLimit: $limit}) {
    recVersion } }"""
SUBSCRIBE = """subscription {
  businessEvents(filter: {events: ["CustomerCreditLimitChangedBusinessEvent"]}) { events } }"""


@dataclass
class Counts:
    requests: int = 0
    errors: int = 0
    events: int = 0
    samples: list[dict[str, float]] = field(default_factory=list)


async def reader(
    url: str, token: str, query: str, pause: float, counts: Counts, end: float
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < end:
            response = await client.post(url, json={"query": query}, headers=headers)
            counts.requests += 1
            if response.status_code != 200 or "errors" in response.json():
                counts.errors += 1
            await asyncio.sleep(pause)


async def writer(
    url: str, token: str, accounts: list[str], pause: float, counts: Counts, end: float
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    n = 0
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < end:
            variables = {"a": accounts[n % len(accounts)], "limit": str(1000 + n % 5000)}
            response = await client.post(
                url, json={"query": WRITE, "variables": variables}, headers=headers
            )
            counts.requests += 1
            if response.status_code != 200 or "errors" in response.json():
                counts.errors += 1
            n += 1
            await asyncio.sleep(pause)


async def subscriber(ws_url: str, token: str, counts: Counts, end: float) -> None:
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(orjson.dumps(init).decode())
        await ws.recv()
        await ws.send(
            orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}).decode()
        )
        while time.monotonic() < end:
            try:
                message = orjson.loads(await asyncio.wait_for(ws.recv(), 1))
            except TimeoutError:
                continue
            if message.get("type") == "next":
                counts.events += len(message["payload"]["data"]["businessEvents"]["events"])


async def sampler(
    base: str, pid: int, admin: str, databases: list[str], every: float, counts: Counts, end: float
) -> None:
    engine = create_engine(admin)
    names = ", ".join(f"'{n}'" for n in databases)
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            while time.monotonic() < end:
                status = await asyncio.to_thread(Path(f"/proc/{pid}/status").read_text)
                rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                metrics = (await client.get(f"{base}/metrics")).text
                tasks = float(re.search(r"^fno_gateway_tasks (\S+)", metrics, re.M).group(1))  # type: ignore[union-attr]
                async with engine.connect() as conn:
                    connections = await conn.scalar(  # names are ours, made above
                        text(f"SELECT count(*) FROM pg_stat_activity WHERE datname IN ({names})")
                    )
                sample = {
                    "minute": (time.monotonic() - started) / 60,
                    "rss_mb": rss,
                    "fds": fds,
                    "tasks": tasks,
                    "pg_connections": float(connections or 0),
                    "requests": counts.requests,
                    "events": counts.events,
                }
                counts.samples.append(sample)
                print(
                    f"{sample['minute']:5.1f} min  rss {rss:7.1f} MB  fds {fds:4}"
                    f"  tasks {tasks:5.0f}  pg {connections:3}  requests {counts.requests:8,}"
                    f"  errors {counts.errors:4}  events {counts.events:9,}",
                    flush=True,
                )
                await asyncio.sleep(every)
    finally:
        await engine.dispose()


async def soak(
    args: argparse.Namespace, base: str, pid: int, tokens: dict[str, str], databases: list[str]
) -> Counts:
    counts = Counts()
    end = time.monotonic() + args.minutes * 60
    url, ws_url = f"{base}/graphql", base.replace("http", "ws") + "/graphql"
    async with httpx.AsyncClient() as client:
        found = await client.post(
            url,
            json={
                "query": '{ customersV3(company: "USMF", first: 50) { nodes { customerAccount } } }'
            },
            headers={"Authorization": f"Bearer {tokens['reader']}"},
        )
    accounts = [n["customerAccount"] for n in found.json()["data"]["customersV3"]["nodes"]]
    work: list[Any] = [
        *(reader(url, tokens["reader"], FAST, 0.02, counts, end) for _ in range(4)),
        *(reader(url, tokens["reader"], GENERIC, 0.05, counts, end) for _ in range(2)),
        writer(url, tokens["writer"], accounts, 0.05, counts, end),
        *(subscriber(ws_url, tokens["reader"], counts, end) for _ in range(args.subscribers)),
        sampler(base, pid, args.pg, databases, args.sample, counts, end),
    ]
    await asyncio.gather(*work)
    return counts


def verdict(counts: Counts, warmup_minutes: float) -> None:
    settled = [s for s in counts.samples if s["minute"] >= warmup_minutes]
    if len(settled) < 2:
        print("too short to judge: run longer than the warm-up")
        return
    first, last = settled[0], settled[-1]
    growth = (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"] * 100
    print(
        f"\nafter warm-up ({warmup_minutes:g} min) to the end: memory {first['rss_mb']:.1f} → "
        f"{last['rss_mb']:.1f} MB ({growth:+.1f} %, goal under +10 %), descriptors "
        f"{first['fds']:.0f} → {last['fds']:.0f}, tasks {first['tasks']:.0f} → "
        f"{last['tasks']:.0f}, "
        f"PostgreSQL connections {first['pg_connections']:.0f} → {last['pg_connections']:.0f}"
    )
    peak = {k: max(s[k] for s in settled) for k in ("fds", "tasks", "pg_connections")}
    print(f"peaks after warm-up: {peak}")
    print(
        f"{counts.requests:,} requests ({counts.errors} errors), {counts.events:,} events received"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "GATEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1, help="minutes before the baseline")
    parser.add_argument("--sample", type=float, default=15, help="seconds between samples")
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--port", type=int, default=8779)
    args = parser.parse_args()

    suffix = uuid.uuid4().hex[:6]
    names = [f"fno_soak_fno_{suffix}", f"fno_soak_control_{suffix}"]
    fno, control = (asyncio.run(fresh_database(args.pg, n)) for n in names)
    folder = Path(tempfile.mkdtemp(prefix="fno-soak-"))
    env = {
        **os.environ,
        "GATEWAY_FNO_URL": fno,
        "GATEWAY_CONTROL_URL": control,
        "GATEWAY_DATA_DIR": str(folder),
        "GATEWAY_DEMO_SCALE": "0.1",
        "GATEWAY_PORT": str(args.port),
        "GATEWAY_LOG_LEVEL": "warning",
    }
    gateway = Path(sys.executable).parent / "fno-gateway"
    server = subprocess.Popen([str(gateway), "serve"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{base}/healthz")
                break
            except httpx.ConnectError:
                time.sleep(0.2)
        tokens = {
            role: subprocess.run(
                [str(gateway), "token", "jwt", "--role", role],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .split()[-1]
            for role in ("reader", "writer")
        }
        counts = asyncio.run(soak(args, base, server.pid, tokens, names))
        verdict(counts, args.warmup)
    finally:
        server.terminate()
        server.wait(30)
        asyncio.run(drop_databases(args.pg, names))
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
