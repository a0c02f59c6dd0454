"""Prometheus metrics: what requests cost, and whether the background work keeps up.

Request figures are counted as requests are answered. The backlog figures (events not
yet logged, changes queued for paused maps, deliveries that failed every try, jobs by
state) are read from the stores when `/metrics` is scraped, so every replica reports
the same shared state and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.dualwrite.tables import queue
from gateway.events.tables import error
from gateway.jobs import job

OPERATION_NAMES = 200  # distinct operation names kept as labels; later ones count as "other"
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Outbox(Protocol):
    async def outbox_depth(self) -> int: ...


class Observer(Protocol):
    def served(self, operation: str | None, path: str, seconds: float) -> None: ...
    def failed(self, code: str) -> None: ...


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.operations = Histogram(
            "fno_gateway_operation_seconds",
            "GraphQL operations over HTTP, by operation name and read path (fast: the JSON "
            "built by the store; generic: resolved field by field).",
            ["operation", "path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "fno_gateway_errors_total",
            "Errors answered, by code (extensions.code).",
            ["code"],
            registry=self.registry,
        )
        self.websockets = Gauge(
            "fno_gateway_websocket_connections",
            "Open GraphQL WebSocket connections (subscriptions).",
            registry=self.registry,
        )
        self.tasks = Gauge(
            "fno_gateway_tasks",
            "asyncio tasks alive in this process: flat under steady load, or something leaks.",
            registry=self.registry,
        )
        self.event_listeners = Gauge(
            "fno_gateway_event_listeners",
            "businessEvents subscriptions served by this process.",
            registry=self.registry,
        )
        self.outbox = Gauge(
            "fno_gateway_outbox_events",
            "Events committed with their change but not yet in the event log (outbox lag).",
            ["store"],
            registry=self.registry,
        )
        self.delivery_errors = Gauge(
            "fno_gateway_event_delivery_errors",
            "Deliveries that failed every try, waiting in the errors store for a resend.",
            registry=self.registry,
        )
        self.queued = Gauge(
            "fno_gateway_dualwrite_queue",
            "Changes queued for paused (or failed) dual-write maps, by map.",
            ["map"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "fno_gateway_jobs",
            "Durable jobs (setup, add-ins, initial sync, catch-up) by state.",
            ["state"],
            registry=self.registry,
        )
        self._names: set[str] = set()
        self._series: dict[tuple[str | None, str], Any] = {}  # (name, path) as given
        self.also: Observer | None = None  # told of each operation too (traces)

    def operation(self, name: str | None) -> str:
        """A bounded label for an operation name: clients choose names, and every
        distinct label is a series kept for good."""
        if not name:
            return "anonymous"
        if name in self._names:
            return name
        if not _NAME.fullmatch(name) or len(self._names) >= OPERATION_NAMES:
            return "other"
        self._names.add(name)
        return name

    def served(self, name: str | None, path: str, seconds: float) -> None:
        series = self._series.get((name, path))
        if series is None:
            series = self.operations.labels(self.operation(name), path)
            if len(self._series) < 4 * OPERATION_NAMES:
                self._series[name, path] = series
        series.observe(seconds)
        if self.also is not None:
            self.also.served(name, path, seconds)

    def failed(self, code: str) -> None:
        self.errors.labels(code).inc()
        if self.also is not None:
            self.also.failed(code)

    async def render(
        self, control: AsyncEngine, stores: Mapping[str, Outbox], listeners: int
    ) -> bytes:
        """The text exposition, with the backlog read from the stores now."""
        self.event_listeners.set(listeners)
        self.tasks.set(len(asyncio.all_tasks()))
        for name, store in stores.items():
            self.outbox.labels(name).set(await store.outbox_depth())
        now = dt.datetime.now(dt.UTC)
        async with control.connect() as conn:
            failed = await conn.scalar(select(func.count()).select_from(error))
            self.delivery_errors.set(failed or 0)
            self.queued.clear()
            for map_name, depth in await conn.execute(
                select(queue.c.map, func.count()).group_by(queue.c.map)
            ):
                self.queued.labels(map_name).set(depth)
            running = and_(job.c.lease_expires_at.is_not(None), job.c.lease_expires_at > now)
            states = {
                "running": running,
                "waiting": and_(job.c.due, ~running),
                "retrying": and_(job.c.due, job.c.attempts > 0),
                "idle": ~job.c.due,
            }
            counts = select(*(func.count().filter(c) for c in states.values())).select_from(job)
            for state, count in zip(states, (await conn.execute(counts)).one(), strict=True):
                self.jobs.labels(state).set(count or 0)
        return generate_latest(self.registry)
