"""`DualWriteService`: the maps of the linked Dataverse environment and their states.

Definitions live in the Dataverse store (the dual-write application installs them
there); each map's state lives in the control store. The write pipeline asks which
maps are running for an entity; that answer is kept in memory and renewed on every
change of state.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from datasources.base import DataSource
from datasources.dataverse import store as dataverse_store
from gateway import jobs
from gateway.dualwrite.tables import (
    activity,
    alert_rule,
    map_state,
    progress,
    queue,
    sync_error,
)
from gateway.events.log import raise_control_event
from gateway.feed import Notifier
from gateway.kernel.catalog import EntityMetadata
from gateway.kernel.dualwrite import (
    AlertAction,
    DualWriteMap,
    MapAction,
    MapState,
    Master,
    Problem,
    Side,
    check_map,
    map_actions,
    map_to_dict,
    parse_map,
)
from gateway.kernel.errors import BadUserInput, Conflict, MapInvalid, NotFound
from gateway.kernel.events import BY_ID
from gateway.kernel.json import dumps, loads, plain
from gateway.setup.linked import LinkedDataverse

log = logging.getLogger("gateway.dualwrite")
ERRORS_SHOWN = 50  # Microsoft shows five
ACTIVITY_SHOWN = 50
RESUME_JOB = "dual-write-resume"


async def record(
    conn: AsyncConnection, environment: str, name: str, kind: str, message: str
) -> None:
    """Add a line to the map's activity log, in the caller's transaction."""
    await conn.execute(
        insert(activity).values(
            environment=environment,
            map=name,
            at=dt.datetime.now(dt.UTC),
            kind=kind,
            message=message,
        )
    )


InitialSyncPlanner = Callable[
    [AsyncConnection, str, str, list[DualWriteMap], Master], Awaitable[None]
]


@dataclass(frozen=True)
class SyncProgress:
    company: str
    copied: int
    failed: int
    done: bool
    updated_at: dt.datetime


@dataclass(frozen=True)
class SyncError:
    id: int
    company: str
    source: Side
    key: dict[str, Any]
    message: str
    at: dt.datetime


@dataclass(frozen=True)
class Activity:
    at: dt.datetime
    kind: str  # STATE, INITIAL_SYNC, REFUSED, CATCH_UP
    message: str


@dataclass(frozen=True)
class AlertRule:
    action: AlertAction
    errors: int
    window_minutes: int
    fired_at: dt.datetime | None


@dataclass(frozen=True)
class MapView:
    definition: DualWriteMap
    state: MapState
    master: Master
    problems: list[Problem]
    actions: list[MapAction]
    updated_at: dt.datetime | None
    queued: int = 0  # changes waiting while the map is paused or resuming
    queue_alert: bool = False  # more are waiting than the alert threshold
    progress: list[SyncProgress] = field(default_factory=list)
    errors: list[SyncError] = field(default_factory=list)  # the latest, newest first
    error_count: int = 0
    activity: list[Activity] = field(default_factory=list)  # the latest, newest first
    alerts: list[AlertRule] = field(default_factory=list)


class DualWriteService:
    def __init__(
        self,
        control: AsyncEngine,
        fno: DataSource,
        linked: LinkedDataverse,
        notifier: Notifier,
        queue_alert: int = 100_000,
    ) -> None:
        self._control = control
        self._notifier = notifier
        self._queue_alert = queue_alert
        self._alerted: set[str] = set()
        self._fno = fno
        self._linked = linked
        self._running: dict[tuple[Side, str], list[DualWriteMap]] = {}
        self._queued: dict[tuple[Side, str], list[DualWriteMap]] = {}
        self._wake: Callable[[], None] | None = None
        self._plan_initial_sync: InitialSyncPlanner | None = None
        self._entities: dict[Side, dict[str, EntityMetadata]] = {}
        self._tracking: dict[int, set[str]] = {}  # by store: the entities it logs changes of

    def use_jobs(self, wake: Callable[[], None]) -> None:
        """How to tell the job runner a resume was submitted."""
        self._wake = wake

    def use_initial_sync(self, plan: InitialSyncPlanner) -> None:
        """How a run with initial sync plans its copy (inside the run's transaction)."""
        self._plan_initial_sync = plan

    # what runs

    def running(self, side: Side, entity: str) -> list[DualWriteMap]:
        """The running maps a write to `entity` on `side` must be carried through."""
        return self._running.get((side, entity), [])

    def store(self, side: Side) -> DataSource:
        if side is Side.FNO:
            return self._fno
        if self._linked.source is None:
            raise NotFound("no Dataverse environment is linked to this gateway's F&O environment")
        return self._linked.source

    async def entities(self, side: Side) -> dict[str, EntityMetadata]:
        """What each store publishes, read once per refresh (not once per write)."""
        cached = self._entities.get(side)
        if cached is None:
            cached = {e.name: e for e in await self.store(side).published_entities()}
            self._entities[side] = cached
        return cached

    def tracked(self, side: Side) -> set[str]:
        """The entities on `side` whose changes sync: a map of theirs runs or queues."""
        return {e for s, e in [*self._running, *self._queued] if s is side}

    async def track(self, maps: Sequence[DualWriteMap]) -> None:
        """Have both stores log what other clients write to these maps' tables, from
        now on (before the maps run, so that no such write is missed)."""
        if not maps:
            return
        for side in Side:
            store, entities = self.store(side), await self.entities(side)
            done = self._tracking.setdefault(id(store), set())
            names = {m.entity_on(side) for m in maps} - done
            wanted = [entities[n] for n in sorted(names) if n in entities]
            if wanted:
                await store.track(wanted)
                done.update(e.name for e in wanted)

    @property
    def control(self) -> AsyncEngine:
        return self._control

    def queued(self, side: Side, entity: str) -> list[DualWriteMap]:
        """The paused (or resuming) maps a write to `entity` on `side` is queued for."""
        return self._queued.get((side, entity), [])

    async def refresh(self) -> None:
        """Reload which maps run (after a state change, a link or a restart)."""
        running: dict[tuple[Side, str], list[DualWriteMap]] = {}
        queued: dict[tuple[Side, str], list[DualWriteMap]] = {}
        self._entities = {}
        if self._linked.source is not None:
            for view in await self.maps():
                m = view.definition
                if view.state in (MapState.RUNNING, MapState.INITIALIZING):
                    # an initializing map carries live writes too: a row written while
                    # the copy runs is not missed, whichever batch it falls in
                    target = running
                elif view.state in (MapState.PAUSED, MapState.RESUMING, MapState.ERROR):
                    target = queued  # in order, behind what waits already; nothing is lost
                else:
                    continue
                target.setdefault((Side.FNO, m.fno_entity), []).append(m)
                target.setdefault((Side.DATAVERSE, m.dataverse_table), []).append(m)
        self._running, self._queued = running, queued
        maps = [m for found in [*running.values(), *queued.values()] for m in found]
        await self.track(list({m.name: m for m in maps}.values()))
        self._notifier.notify()

    async def watch(self) -> AsyncIterator[list[MapView]]:
        """The maps now, then again at every change of a state, a count or a progress."""
        last: object = None
        while True:
            views = await self.maps()
            seen = [
                (v.definition.name, v.state, v.queued, v.error_count, v.progress) for v in views
            ]
            if seen != last:
                last = seen
                yield views
            await self._notifier.wait()

    async def enqueue(
        self, maps: list[DualWriteMap], side: Side, keys: Sequence[Mapping[str, Any]]
    ) -> None:
        """Remember that the rows with these keys changed on `side`, for each paused
        map. Committed before the write itself: a write that then fails leaves a
        harmless entry (resuming re-reads the row), never a lost one."""
        environment = self._environment()
        now = dt.datetime.now(dt.UTC)
        async with self._control.begin() as conn:
            await conn.execute(
                insert(queue),
                [
                    {
                        "environment": environment,
                        "map": m.name,
                        "source": side.value,
                        "key": dumps(plain(dict(key))),
                        "at": now,
                    }
                    for m in maps
                    for key in keys
                ],
            )
            for m in maps:
                if m.name in self._alerted:
                    continue
                waiting = await conn.scalar(
                    select(func.count()).where(
                        queue.c.environment == environment, queue.c.map == m.name
                    )
                )
                if (waiting or 0) >= self._queue_alert:
                    self._alerted.add(m.name)
                    log.warning(
                        "dual-write map %r is paused with %d changes waiting (alert at %d); "
                        "resume it (resumeDualWriteMap)",
                        m.name,
                        waiting,
                        self._queue_alert,
                    )

    async def pause(self, name: str) -> MapView:
        view = await self.map(name)
        if view.state is not MapState.RUNNING:
            raise Conflict(f"only a running map pauses; {name} is {view.state.value.lower()}")
        async with self._control.begin() as conn:
            await self.set_state_in(conn, [name], MapState.PAUSED)
        await self.refresh()
        return await self.map(name)

    async def resume(self, name: str) -> MapView:
        """Replay what was queued, in order; live again once the queue is empty."""
        view = await self.map(name)
        if view.state not in (MapState.PAUSED, MapState.ERROR):
            raise Conflict(
                f"only a paused map or one in error resumes; {name} is {view.state.value.lower()}"
            )
        self._alerted.discard(name)
        async with self._control.begin() as conn:
            await self.set_state_in(conn, [name], MapState.RESUMING)
            await jobs.submit(conn, RESUME_JOB, f"{self._environment()}/{name}")
        await self.refresh()
        if self._wake is not None:
            self._wake()
        return await self.map(name)

    # the API

    async def maps(self) -> list[MapView]:
        environment = self._environment()
        definitions = await self._definitions()
        fno, dv = await self.entities(Side.FNO), await self.entities(Side.DATAVERSE)
        async with self._control.connect() as conn:
            rows = {
                r.name: r
                for r in await conn.execute(
                    select(map_state).where(map_state.c.environment == environment)
                )
            }
            copies = (
                await conn.execute(
                    select(progress)
                    .where(progress.c.environment == environment)
                    .order_by(progress.c.company)
                )
            ).all()
            waiting: dict[str, int] = dict(
                (
                    await conn.execute(
                        select(queue.c.map, func.count())
                        .where(queue.c.environment == environment)
                        .group_by(queue.c.map)
                    )
                ).all()
            )
            rules = (
                await conn.execute(
                    select(alert_rule).where(alert_rule.c.environment == environment)
                )
            ).all()
            logged = (
                await conn.execute(
                    select(activity)
                    .where(activity.c.environment == environment)
                    .order_by(activity.c.id.desc())
                    .limit(ACTIVITY_SHOWN * 20)
                )
            ).all()
            error_counts: dict[str, int] = dict(
                (
                    await conn.execute(
                        select(sync_error.c.map, func.count())
                        .where(sync_error.c.environment == environment)
                        .group_by(sync_error.c.map)
                    )
                ).all()
            )
            errors = (  # the latest only: the log itself may hold many
                await conn.execute(
                    select(sync_error)
                    .where(sync_error.c.environment == environment)
                    .order_by(sync_error.c.id.desc())
                    .limit(ERRORS_SHOWN * max(1, len(definitions)))
                )
            ).all()
        views = []
        for m in definitions:
            row = rows.get(m.name)
            state = MapState(row.state) if row is not None else MapState.NOT_RUNNING
            views.append(
                MapView(
                    definition=m,
                    state=state,
                    master=Master(row.master) if row is not None else Master.DATAVERSE,
                    problems=check_map(m, fno.get(m.fno_entity), dv.get(m.dataverse_table), dv),
                    actions=map_actions(state),
                    updated_at=row.updated_at if row is not None else None,
                    queued=int(waiting.get(m.name, 0)),
                    queue_alert=int(waiting.get(m.name, 0)) >= self._queue_alert,
                    progress=[
                        SyncProgress(c.company, c.copied, c.failed, c.done, c.updated_at)
                        for c in copies
                        if c.map == m.name
                    ],
                    errors=[
                        SyncError(e.id, e.company, Side(e.source), loads(e.key), e.message, e.at)
                        for e in errors
                        if e.map == m.name
                    ][:ERRORS_SHOWN],
                    error_count=int(error_counts.get(m.name, 0)),
                    activity=[Activity(a.at, a.kind, a.message) for a in logged if a.map == m.name][
                        :ACTIVITY_SHOWN
                    ],
                    alerts=[
                        AlertRule(AlertAction(r.action), r.errors, r.window_minutes, r.fired_at)
                        for r in rules
                        if r.map == m.name
                    ],
                )
            )
        return views

    async def _definitions(self) -> list[DualWriteMap]:
        async with self._linked_engine().connect() as conn:
            return [parse_map(d) for d in await dataverse_store.map_definitions(conn)]

    async def state(self, name: str) -> MapState:
        """A map's state alone: cheap enough to poll."""
        async with self._control.connect() as conn:
            found = await conn.scalar(
                select(map_state.c.state).where(
                    map_state.c.environment == self._environment(), map_state.c.name == name
                )
            )
        return MapState(found) if found else MapState.NOT_RUNNING

    async def definition(self, name: str) -> DualWriteMap:
        """One map's definition, without its state, logs and checks."""
        found = next((m for m in await self._definitions() if m.name == name), None)
        if found is None:
            raise NotFound(f"no dual-write map named {name!r}; query dualWriteMaps")
        return found

    async def map(self, name: str) -> MapView:
        found = next((v for v in await self.maps() if v.definition.name == name), None)
        if found is None:
            raise NotFound(
                f"no dual-write map named {name!r}; install the dual-write application, "
                "then query dualWriteMaps"
            )
        return found

    async def run(self, name: str, master: Master, initial_sync: bool = False) -> list[MapView]:
        """Run the map and every map it depends on that is not running yet; with
        initial sync, copy their existing rows first (from the master)."""
        views = {v.definition.name: v for v in await self.maps()}
        if name not in views:
            await self.map(name)  # raises NOT_FOUND
        order: list[str] = []
        self._with_dependencies(name, views, order, set())
        starting = [n for n in order if views[n].state is not MapState.RUNNING]
        problems = [(n, p) for n in starting for p in views[n].problems]
        if problems:
            raise MapInvalid(
                "the map cannot run: " + "; ".join(f"{n}: {p.message}" for n, p in problems),
                problems=[{"map": n, "code": p.code, "message": p.message} for n, p in problems],
            )
        environment = self._environment()
        await self.track([views[n].definition for n in starting])
        async with self._control.begin() as conn:
            failed = [n for n in starting if views[n].state is MapState.ERROR]
            if failed:  # running again starts over; resuming would replay the queue
                await conn.execute(
                    delete(queue).where(queue.c.environment == environment, queue.c.map.in_(failed))
                )
            if initial_sync and starting:
                assert self._plan_initial_sync is not None
                await self.set_state_in(conn, starting, MapState.INITIALIZING, master)
                definitions = [views[n].definition for n in starting]
                await self._plan_initial_sync(conn, environment, name, definitions, master)
            else:
                await self.set_state_in(conn, starting, MapState.RUNNING, master)
        await self.refresh()
        return [v for v in await self.maps() if v.definition.name in order]

    async def save(self, definition: Mapping[str, Any]) -> MapView:
        """Create a map, or change one that is not running; it must pass every check."""
        m = parse_map(definition)
        current = next((v for v in await self.maps() if v.definition.name == m.name), None)
        if current is not None and current.state is not MapState.NOT_RUNNING:
            raise Conflict(f"{m.name} is {current.state.value.lower()}: stop it before changing it")
        fno, dv = await self.entities(Side.FNO), await self.entities(Side.DATAVERSE)
        problems = check_map(m, fno.get(m.fno_entity), dv.get(m.dataverse_table), dv)
        if problems:
            raise MapInvalid(
                f"{m.name} cannot be saved: " + "; ".join(p.message for p in problems),
                problems=[{"map": m.name, "code": p.code, "message": p.message} for p in problems],
            )
        async with self._linked_engine().begin() as conn:
            await dataverse_store.install_map_definitions(conn, [map_to_dict(m)])
        return await self.map(m.name)

    async def delete(self, name: str) -> None:
        view = await self.map(name)
        if view.state is not MapState.NOT_RUNNING:
            raise Conflict(f"{name} is {view.state.value.lower()}: stop it before deleting it")
        async with self._linked_engine().begin() as conn:
            await dataverse_store.remove_map_definition(conn, name)

    async def stop(self, name: str) -> MapView:
        view = await self.map(name)
        if view.state is MapState.NOT_RUNNING:
            raise Conflict(f"{name} is not running")
        async with self._control.begin() as conn:
            await self.set_state_in(conn, [name], MapState.NOT_RUNNING, view.master)
            await conn.execute(  # a stopped map keeps nothing to replay
                delete(queue).where(queue.c.environment == self._environment(), queue.c.map == name)
            )
        await self.refresh()
        return await self.map(name)

    def _with_dependencies(
        self, name: str, views: dict[str, MapView], order: list[str], seen: set[str]
    ) -> None:
        if name in seen:
            return
        seen.add(name)
        for dependency in views[name].definition.depends_on:
            if dependency not in views:
                raise BadUserInput(f"{name} depends on {dependency}, which is not installed")
            self._with_dependencies(dependency, views, order, seen)
        order.append(name)

    async def set_state_in(
        self,
        conn: AsyncConnection,
        names: list[str],
        state: MapState,
        master: Master | None = None,
    ) -> None:
        """Record the maps' state in the caller's transaction (the master kept if None)."""
        environment = self._environment()
        now = dt.datetime.now(dt.UTC)
        changed = BY_ID["DualWriteMapStateChangedBusinessEvent"]
        for name in names:
            await record(conn, environment, name, "STATE", f"the map is {state.value}")
            await raise_control_event(conn, changed, "", {"Map": name, "State": state.value})
            where = (map_state.c.environment == environment, map_state.c.name == name)
            kept = await conn.scalar(select(map_state.c.master).where(*where))
            await conn.execute(delete(map_state).where(*where))
            await conn.execute(
                insert(map_state).values(
                    environment=environment,
                    name=name,
                    state=state.value,
                    master=(master.value if master is not None else kept) or Master.DATAVERSE.value,
                    updated_at=now,
                )
            )

    def _linked_engine(self) -> AsyncEngine:
        """Where the linked environment's map definitions are."""
        if self._linked.platform is None:
            raise NotFound("no Dataverse environment is linked to this gateway's F&O environment")
        return self._linked.platform

    async def fail(self, names: Sequence[str], message: str) -> None:
        """Put maps that cannot carry on in the Error state, saying why. Changes queue
        for them as for a paused map: resuming replays them, running again starts over."""
        async with self._control.begin() as conn:
            for name in names:
                await record(conn, self._environment(), name, "ERROR", message)
            await self.set_state_in(conn, list(names), MapState.ERROR)
        log.error("dual-write maps %s are in error: %s", ", ".join(names), message)
        await self.refresh()

    async def note(self, names: list[str], kind: str, message: str) -> None:
        """Add a line to these maps' activity logs."""
        environment = self._environment()
        async with self._control.begin() as conn:
            for name in names:
                await record(conn, environment, name, kind, message)
        self._notifier.notify()
        if kind == "REFUSED":
            for name in names:
                await self.check_alerts(name)

    async def set_alert(
        self, name: str, action: AlertAction, errors: int, window_minutes: int
    ) -> MapView:
        """Act when the map counts `errors` or more within the window: notify (log and
        activity), pause it, or stop it. One rule per action."""
        await self.map(name)
        if errors < 1 or window_minutes < 1:
            raise BadUserInput("errors and withinMinutes are at least 1")
        environment = self._environment()
        where = (
            alert_rule.c.environment == environment,
            alert_rule.c.map == name,
            alert_rule.c.action == action.value,
        )
        async with self._control.begin() as conn:
            await conn.execute(delete(alert_rule).where(*where))
            await conn.execute(
                insert(alert_rule).values(
                    environment=environment,
                    map=name,
                    action=action.value,
                    errors=errors,
                    window_minutes=window_minutes,
                )
            )
        return await self.map(name)

    async def remove_alert(self, name: str, action: AlertAction) -> MapView:
        async with self._control.begin() as conn:
            await conn.execute(
                delete(alert_rule).where(
                    alert_rule.c.environment == self._environment(),
                    alert_rule.c.map == name,
                    alert_rule.c.action == action.value,
                )
            )
        return await self.map(name)

    async def check_alerts(self, name: str) -> None:
        """Fire the map's rules whose error count is reached (once per window)."""
        environment = self._environment()
        now = dt.datetime.now(dt.UTC)
        fired: list[AlertAction] = []
        async with self._control.begin() as conn:
            rules = (
                await conn.execute(
                    select(alert_rule).where(
                        alert_rule.c.environment == environment, alert_rule.c.map == name
                    )
                )
            ).all()
            for rule in rules:
                since = now - dt.timedelta(minutes=rule.window_minutes)
                if rule.fired_at is not None and rule.fired_at >= since:
                    continue
                refused = await conn.scalar(
                    select(func.count()).where(
                        activity.c.environment == environment,
                        activity.c.map == name,
                        activity.c.kind == "REFUSED",
                        activity.c.at >= since,
                    )
                )
                logged = await conn.scalar(
                    select(func.count()).where(
                        sync_error.c.environment == environment,
                        sync_error.c.map == name,
                        sync_error.c.at >= since,
                    )
                )
                count = (refused or 0) + (logged or 0)
                if count < rule.errors:
                    continue
                await conn.execute(
                    update(alert_rule)
                    .where(
                        alert_rule.c.environment == environment,
                        alert_rule.c.map == name,
                        alert_rule.c.action == rule.action,
                    )
                    .values(fired_at=now)
                )
                message = (
                    f"{count} errors within {rule.window_minutes} min (alert at {rule.errors}): "
                    f"{rule.action.lower()}"
                )
                await record(conn, environment, name, "ALERT", message)
                log.warning("dual-write map %r: %s", name, message)
                fired.append(AlertAction(rule.action))
        view = await self.map(name)
        if AlertAction.STOP in fired and view.state is not MapState.NOT_RUNNING:
            await self.stop(name)
        elif AlertAction.PAUSE in fired and view.state is MapState.RUNNING:
            await self.pause(name)

    @property
    def environment(self) -> str:
        """The linked F&O environment whose maps these are."""
        return self._environment()

    def _environment(self) -> str:
        if self._linked.environment is None:
            raise NotFound("no Dataverse environment is linked to this gateway's F&O environment")
        return self._linked.environment
