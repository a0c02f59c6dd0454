"""Business events benchmark: committed changes → outbox → event log → 100 WebSocket
subscribers of `businessEvents`, through a real `fno-gateway serve` process.

  (a) events per second sustained and end-to-end latency (commit of the change that
      raised an event → the event received by a subscriber), p50/p99 over every event
      every subscriber received, after a warm-up of the same load (goal: 5,000
      events/s, p99 under 100 ms), beside Microsoft's published figure for its data
      events (5,000 per 5 minutes);
  (b) the loss check: 10,000 events to a subscriber whose connection is cut 5 times
      while they flow; it reconnects with its last cursor each time: every event must
      arrive; duplicates are counted.

    .venv/bin/python bench/events_bench.py --rate 5000 --seconds 20 --subscribers 100

A writer in a process of its own commits, every 10 ms, a change to a customer row
together with its share of the events in the F&O store's outbox (as the gateway's own
writes do). The outbox notifies on commit (LISTEN/NOTIFY), which wakes the gateway's
relay; the event log does the same for the stream. Subscribers run in this process.
Stores are fresh PostgreSQL databases on --pg, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datasources.sql.engine import create_engine
from datasources.sql.outbox import outbox

MICROSOFT_PER_SECOND = 5000 / 300  # "5,000 data events per 5 minutes"
SUBSCRIBE = """subscription($after: String) {
  businessEvents(after: $after, filter: {events: ["BenchTickBusinessEvent"]}) {
    cursor events } }"""
TICK = 0.01  # the writer commits this often


def dumps(message: Any) -> str:
    return orjson.dumps(message).decode()  # a text frame, as the protocol wants


class Subscriber:
    """A graphql-transport-ws client that records when each event arrives.

    `exact`: every message is parsed and every event counted by its sequence number
    (the loss check). Otherwise, to keep up with 5,000 events a second on each of 100
    sockets in one process, a message is only scanned: its events are counted, and
    all of them get the latency of its oldest (first) event, an upper bound."""

    def __init__(self, url: str, token: str, expected: int, exact: bool = False) -> None:
        self.url, self.token = url, token
        self.expected, self.exact = expected, exact
        self.complete = asyncio.Event()  # every expected event is in
        self.latencies: list[tuple[float, int]] = []  # (seconds, events it applies to)
        self.received = 0
        self.seen: dict[int, int] = {}  # exact: the writer's sequence number → times received
        self.cursor: str | None = None
        self.ready = asyncio.Event()

    def expect(self, count: int) -> None:
        """Start counting afresh (after a warm-up)."""
        self.expected, self.received, self.latencies = count, 0, []
        self.complete.clear()

    async def run(self, stop: asyncio.Event, cuts: asyncio.Queue[None] | None = None) -> None:
        while not stop.is_set():
            async with websockets.connect(
                self.url,
                subprotocols=["graphql-transport-ws"],
                max_size=None,  # type: ignore[list-item]
            ) as ws:
                init = {"Authorization": f"Bearer {self.token}"}
                await ws.send(dumps({"type": "connection_init", "payload": init}))
                assert orjson.loads(await ws.recv())["type"] == "connection_ack"
                variables = {"after": self.cursor}
                payload = {"query": SUBSCRIBE, "variables": variables}
                await ws.send(dumps({"id": "1", "type": "subscribe", "payload": payload}))
                self.ready.set()
                waits = [asyncio.ensure_future(self._read(ws)), asyncio.ensure_future(stop.wait())]
                if cuts is not None:
                    waits.append(asyncio.ensure_future(cuts.get()))
                done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if waits[0] in done:
                    waits[0].result()  # the server closed the socket: say why
                if cuts is not None and waits[2] in done:
                    ws.transport.abort()  # cut, as a network failure would: no close handshake

    async def _read(self, ws: Any) -> None:
        async for raw in ws:
            now = time.time()
            if self.exact:
                message = orjson.loads(raw)
                assert message["type"] == "next", message
                batch = message["payload"]["data"]["businessEvents"]
                for event in batch["events"]:
                    self.latencies.append((now - event["SentAt"], 1))
                    self.seen[event["Seq"]] = self.seen.get(event["Seq"], 0) + 1
                self.received = len(self.seen)
                self.cursor = batch["cursor"]
            else:
                assert raw.startswith('{"id"'), raw[:200]
                count = raw.count('"Seq":')
                at = raw.index('"SentAt":') + 9
                sent = float(raw[at : raw.index("}", at)])
                self.latencies.append((now - sent, count))
                self.received += count
            if self.received >= self.expected:
                self.complete.set()


def percentile(latencies: list[tuple[float, int]], q: float) -> float:
    """The latency below which a share `q` of the events arrived."""
    total = sum(n for _, n in latencies)
    running = 0
    for seconds, n in sorted(latencies):
        running += n
        if running >= q * total:
            return seconds
    return 0.0


async def write_elsewhere(url: str, rate: float, total: int, start: int = 0) -> float:
    """`write` in a process of its own: the subscribers here do not slow the writer."""
    with ProcessPoolExecutor(1) as pool:
        return await asyncio.get_running_loop().run_in_executor(
            pool, write_now, url, rate, total, start
        )


def write_now(url: str, rate: float, total: int, start: int) -> float:
    return asyncio.run(write(url, rate, total, start))


async def write(url: str, rate: float, total: int, start: int = 0) -> float:
    """Commit `total` events at `rate` a second; the seconds it took."""
    engine = create_engine(url)
    per_tick = max(1, round(rate * TICK))
    began = time.perf_counter()
    sent = 0
    async with engine.connect() as conn:
        while sent < total:
            due = began + (sent / rate)
            if (pause := due - time.perf_counter()) > 0:
                await asyncio.sleep(pause)
            count = min(per_tick, total - sent)
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            stamp = time.time()
            rows = [
                {
                    "event_id": str(uuid.uuid4()),
                    "business_event": "BenchTickBusinessEvent",
                    "major": 1,
                    "minor": 0,
                    "category": "Bench",
                    "legal_entity": "USMF",
                    "entity": None,
                    "payload": orjson.dumps({"Seq": start + sent + i, "SentAt": stamp}).decode(),
                    "initiating_user": "bench",
                    "at": now,
                }
                for i in range(count)
            ]
            async with conn.begin():
                await conn.exec_driver_sql(
                    "UPDATE custcustomerv3entity SET creditlimit = creditlimit + 1 WHERE "
                    "customeraccount = (SELECT min(customeraccount) FROM custcustomerv3entity)"
                )
                await conn.execute(outbox.insert(), rows)
            sent += count
    await engine.dispose()
    return time.perf_counter() - began


async def throughput(
    ws_url: str,
    fno: str,
    token: str,
    rate: float,
    seconds: float,
    subscribers: int,
    warmup: float,
) -> None:
    stop = asyncio.Event()
    total = int(rate * seconds)
    clients = [Subscriber(ws_url, token, int(rate * warmup)) for _ in range(subscribers)]
    tasks = [asyncio.create_task(c.run(stop)) for c in clients]
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 60)
    await asyncio.sleep(1.0)
    if warmup:  # the same load, not counted: connections, caches and pools settle
        await write_elsewhere(fno, rate, int(rate * warmup), -(10**9))
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.complete.wait() for c in clients)), 60)
    for c in clients:
        c.expect(total)
    took = await write_elsewhere(fno, rate, total)
    with suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.complete.wait() for c in clients)), 60)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [x for c in clients for x in c.latencies]
    deliveries = sum(c.received for c in clients)
    complete = sum(c.received == total for c in clients)
    print(
        f"(a) {total:,} events committed in {took:.1f} s (after {warmup:g} s of warm-up): "
        f"{total / took:,.0f} events/s "
        f"(Microsoft's data events: {MICROSOFT_PER_SECOND:.1f}/s)"
    )
    print(
        f"    to {subscribers} subscribers ({complete} received every event): "
        f"{deliveries:,} deliveries, {deliveries / took:,.0f}/s"
    )
    print(
        f"    end-to-end latency p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(latencies, default=(0, 0))[0] * 1000:.0f} ms"
    )


async def loss_check(ws_url: str, fno: str, token: str, events: int, cut_count: int) -> None:
    stop = asyncio.Event()
    cuts: asyncio.Queue[None] = asyncio.Queue()
    client = Subscriber(ws_url, token, events, exact=True)
    task = asyncio.create_task(client.run(stop, cuts))
    await asyncio.wait_for(client.ready.wait(), 60)
    start = 10**9  # apart from the events of (a)
    rate = 2000.0
    writing = asyncio.create_task(write_elsewhere(fno, rate, events, start))
    for _ in range(cut_count):
        await asyncio.sleep(events / rate / (cut_count + 1))
        client.ready.clear()
        cuts.put_nowait(None)
        await asyncio.wait_for(client.ready.wait(), 30)
    await writing
    with suppress(TimeoutError):
        await asyncio.wait_for(client.complete.wait(), 60)
    stop.set()
    await asyncio.gather(task, return_exceptions=True)
    mine = {seq: n for seq, n in client.seen.items() if seq >= start}
    duplicates = sum(n - 1 for n in mine.values())
    print(
        f"(b) {events:,} events, connection cut {cut_count} times: received "
        f"{len(mine):,} of {events:,} ({events - len(mine)} lost), {duplicates} duplicates"
    )


async def fresh_database(admin: str, name: str) -> str:
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await engine.dispose()
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


async def drop_databases(admin: str, names: list[str]) -> None:
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        for name in names:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "GATEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=2, help="seconds of load not counted")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--loss-events", type=int, default=10_000)
    parser.add_argument("--cuts", type=int, default=5)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    args = parser.parse_args()

    suffix = uuid.uuid4().hex[:6]
    names = [f"fno_ev_bench_fno_{suffix}", f"fno_ev_bench_control_{suffix}"]
    fno, control = (asyncio.run(fresh_database(args.pg, n)) for n in names)
    folder = Path(tempfile.mkdtemp(prefix="fno-ev-"))
    env = {
        **os.environ,
        "GATEWAY_FNO_URL": fno,
        "GATEWAY_CONTROL_URL": control,
        "GATEWAY_DATA_DIR": str(folder),
        "GATEWAY_DEMO_SCALE": "0.1",
        "GATEWAY_PORT": str(args.port),
        "GATEWAY_WORKERS": str(args.workers),
    }
    gateway = Path(sys.executable).parent / "fno-gateway"
    server = subprocess.Popen([str(gateway), "serve"], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                httpx.post(
                    f"http://127.0.0.1:{args.port}/graphql", json={"query": "{ __typename }"}
                )
                break
            except httpx.ConnectError:
                time.sleep(0.2)
        token = (
            subprocess.run(
                [str(gateway), "token", "jwt", "--role", "reader"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .split()[-1]
        )
        ws_url = f"ws://127.0.0.1:{args.port}/graphql"
        gc.set_threshold(50_000, 50, 100)  # the subscribers' pauses are not the gateway's
        asyncio.run(
            throughput(ws_url, fno, token, args.rate, args.seconds, args.subscribers, args.warmup)
        )
        asyncio.run(loss_check(ws_url, fno, token, args.loss_events, args.cuts))
    finally:
        server.terminate()
        server.wait(30)
        asyncio.run(drop_databases(args.pg, names))
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
