"""The running gateway's parts, opened and closed together (composition root)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import anyio.to_thread
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.dataverse.provisioner import Location
from datasources.fno_demo.generate import build_demo_store
from datasources.odata.endpoint import Endpoint, is_odata
from datasources.odata.source import ODataSource
from datasources.sql import notify
from datasources.sql.engine import create_engine, dispose_when_idle
from datasources.sql.source import SqlDataSource
from gateway import control, demo_tenant
from gateway.auth import Authenticator, Principal, Role
from gateway.catalog.service import CatalogService
from gateway.dualwrite import initial_sync
from gateway.dualwrite.catchup import CatchUp
from gateway.dualwrite.initial_sync import InitialSync
from gateway.dualwrite.service import RESUME_JOB, DualWriteService
from gateway.dualwrite.tracker import ChangeTracker
from gateway.events.dispatch import Dispatcher
from gateway.events.endpoints import EndpointService
from gateway.events.log import EventLog
from gateway.events.relay import EventRelay
from gateway.events.senders import Brokers
from gateway.events.stream import EventStream
from gateway.feed import Notifier
from gateway.jobs import JobRunner
from gateway.kernel.catalog import ResolvedCatalog
from gateway.leases import Leases
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.setup import addins, service
from gateway.setup.addins import AddInService
from gateway.setup.linked import LinkedDataverse
from gateway.setup.service import IntegrationService
from gateway.tenant import TenantService
from gateway.writes import WritePipeline
from schema.builder import GatewaySchema, build_schema
from schema.context import ReadLimits, RequestContext, Services

log = logging.getLogger("gateway")


class SchemaHolder:
    """Holds the current schema; rebuilds it off the event loop and swaps it atomically.

    Requests read `current` once when they start, so a request in flight finishes
    on the schema it began with.
    """

    def __init__(
        self,
        catalog: CatalogService,
        limits: dict[str, int],
        dataverse: Callable[[], Awaitable[ResolvedCatalog | None]] | None = None,
    ) -> None:
        self._catalog = catalog
        self._limits = limits  # build_schema's: max_depth, max_aliases, max_tokens
        self._dataverse = dataverse
        self._lock = asyncio.Lock()
        self.current: GatewaySchema | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def rebuild_soon(self) -> None:
        """`rebuild`, in the background (another replica changed the catalog or link)."""
        task = asyncio.create_task(self.rebuild(), name="schema rebuild")
        self._pending.add(task)
        task.add_done_callback(self._rebuilt)

    def _rebuilt(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("the schema could not be rebuilt", exc_info=task.exception())

    async def rebuild(self) -> None:
        async with self._lock:
            resolved = await self._catalog.resolved()
            tables = await self._dataverse() if self._dataverse is not None else None
            version = resolved.version + (f"+{tables.version}" if tables is not None else "")
            if self.current is not None and self.current.catalog_version == version:
                return
            schema = await anyio.to_thread.run_sync(
                lambda: build_schema(resolved, dataverse=tables, **self._limits)
            )
            self.current = schema
            log.info("schema %s in service: %d entities", resolved.version, len(resolved.entities))


SCHEMA_CHANNEL = "fno_schema_changed"  # the catalog or the Dataverse link changed


@dataclass
class Runtime:
    settings: Settings
    control_engine: AsyncEngine
    fno: SqlDataSource | ODataSource
    catalog: CatalogService
    schemas: SchemaHolder
    limits: ReadLimits
    services: Services
    runner: JobRunner
    notifier: Notifier
    linked: LinkedDataverse
    tracker: ChangeTracker
    relay: EventRelay
    schema_changes: notify.Listener
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def auth(self) -> Authenticator:
        return self.services.auth

    async def control_ping(self) -> None:
        async with self.control_engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def render_metrics(self) -> bytes:
        stores: dict[str, SqlDataSource | ODataSource] = {"fno": self.fno}
        if self.linked.source is not None:
            stores["dataverse"] = self.linked.source
        return await self.metrics.render(
            self.control_engine, stores, self.services.stream.listening
        )

    def context(self, principal: Principal) -> RequestContext:
        """What a request's resolvers see: its caller and the runtime's stores and services."""
        return RequestContext(
            principal,
            self.fno,
            self.catalog,
            self.limits,
            self.services,
            dataverse=self.linked.source,
        )

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        if settings.uses_data_dir:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        control_engine = create_engine(settings.store_url("control"), settings.pool_size)
        fno = await _fno_store(settings, control_engine)
        try:
            await _migrated(settings, control_engine)
        except BaseException:
            await fno.close()
            await control_engine.dispose()
            raise
        await fno.prepare_outbox()
        catalog = CatalogService(control_engine, fno)
        await catalog.sync()
        services, runner, notifier, linked, tracker = await _control_plane(
            settings, control_engine, fno
        )
        await services.events.prepare()
        relay = EventRelay(
            control_engine,
            lambda: [fno, *([linked.source] if linked.source is not None else [])],
            notifier,
            settings.poll_seconds,
        )
        services.writes.use_relay(relay.wake)
        notifier.also_wake(services.stream.wake)  # the relay logged events
        limits = {
            "max_depth": settings.max_depth,
            "max_aliases": settings.max_aliases,
            "max_tokens": settings.max_tokens,
        }
        schemas = SchemaHolder(catalog, limits, linked.catalog)
        await schemas.rebuild()  # opens the linked Dataverse store, if there is one
        await services.dualwrite.refresh()
        catalog.on_change(schemas.rebuild)
        services.integrations.on_link_change(schemas.rebuild)
        services.integrations.on_link_change(services.dualwrite.refresh)
        # every other replica rebuilds its schema at once too (PostgreSQL control store)
        told = partial(notify.send, control_engine, SCHEMA_CHANNEL)
        catalog.on_change(told)
        services.integrations.on_link_change(told)
        schema_changes = notify.Listener(control_engine, SCHEMA_CHANNEL, schemas.rebuild_soon)
        schema_changes.start()
        if settings.run_jobs:
            runner.start()
            tracker.start()
            relay.start()
            services.dispatcher.start()
        services.stream.start()
        return cls(
            settings=settings,
            control_engine=control_engine,
            fno=fno,
            catalog=catalog,
            schemas=schemas,
            limits=ReadLimits(
                settings.default_page_size,
                settings.max_page_size,
                settings.max_cost,
                settings.operation_seconds,
            ),
            services=services,
            runner=runner,
            notifier=notifier,
            linked=linked,
            tracker=tracker,
            relay=relay,
            schema_changes=schema_changes,
        )

    async def close(self) -> None:
        await self.schema_changes.stop()
        await self.tracker.stop()
        await self.relay.stop()
        await self.services.stream.stop()
        await self.services.dispatcher.stop()
        await self.runner.stop()
        await self.services.initial_sync.close()
        await self.linked.close()
        await self.fno.close()
        await dispose_when_idle(self.control_engine)


async def _fno_store(settings: Settings, control: AsyncEngine) -> SqlDataSource | ODataSource:
    """The F&O store its URL names: a database (the demo one made if asked and missing),
    or an OData service, whose changes' events wait in the control store."""
    url = settings.store_url("fno")
    if is_odata(url):
        return ODataSource(Endpoint.parse(url), control)
    engine = create_engine(url, settings.pool_size)
    if settings.demo and not await _has_metadata(engine):
        log.info("creating the demo F&O store (scale %s)", settings.demo_scale)
        await build_demo_store(engine, settings.demo_scale)
    return SqlDataSource(engine, settings.read_pool_size)


async def _migrated(settings: Settings, engine: AsyncEngine) -> None:
    """The control store at this gateway's revision: migrated now, or already."""
    if settings.migrate_on_start:
        await control.migrate(engine)
        return
    found, needed = await control.revision(engine), control.head()
    if found != needed:
        raise SystemExit(
            f"the control store is at revision {found or '(none)'}, this gateway needs "
            f"{needed}: run `fno-gateway migrate` (or set GATEWAY_MIGRATE_ON_START=true)"
        )


async def _control_plane(
    settings: Settings, control: AsyncEngine, fno: SqlDataSource | ODataSource
) -> tuple[Services, JobRunner, Notifier, LinkedDataverse, ChangeTracker]:
    notifier = Notifier(settings.poll_seconds)
    lease = dt.timedelta(seconds=settings.job_lease_seconds)
    runner = JobRunner(
        control,
        lease,
        settings.poll_seconds,
        tries=settings.job_tries,
    )
    tenant = TenantService(control)
    location = Location(settings.dataverse_home())
    integrations = IntegrationService(control, tenant, location, notifier, runner.wake)
    add_ins = AddInService(control, tenant, location, notifier, runner.wake)
    runner.register(service.JOB_KIND, integrations.step)
    runner.register(addins.JOB_KIND, add_ins.step)
    auth = Authenticator(
        control, settings.token_secret(), settings.anonymous_reads, settings.jwt_public_key
    )
    admin = demo_tenant.ADMINISTRATOR if settings.demo else "admin"
    name = "Contoso" if settings.demo else "Tenant"
    if await tenant.ensure(name, demo_tenant.TENANT_ID, demo_tenant.DEMO_CAPACITY):
        if settings.demo:
            await demo_tenant.seed_demo_tenant(tenant, settings.store_url("fno"))
        _, key = await auth.create_key(admin, [Role.ADMIN], description="created on first start")
        print(
            f"\nAn admin API key for {admin} (shown this once; keep it):\n\n    {key}\n\n"
            'In GraphiQL, open Headers and add {"Authorization": "Bearer <that key>"}.\n',
            file=sys.stderr,
            flush=True,
        )
    linked = LinkedDataverse(
        settings.store_url("fno"),
        tenant,
        integrations,
        control,
        location,
        settings.pool_size,
        settings.read_pool_size,
    )
    dualwrite = DualWriteService(control, fno, linked, notifier, settings.queue_alert)
    initial = InitialSync(control, dualwrite, notifier, runner.wake, settings.sync_batch)
    dualwrite.use_initial_sync(initial.plan)
    runner.register(initial_sync.JOB_KIND, initial.step, initial.give_up)
    dualwrite.use_jobs(runner.wake)
    catch_up = CatchUp(control, dualwrite, notifier)
    runner.register(RESUME_JOB, catch_up.step, catch_up.give_up)
    writes = WritePipeline(dualwrite, settings.sync_timeout)
    events = EventLog(control)
    stream = EventStream(events, settings.poll_seconds, settings.event_buffer)
    brokers = Brokers()
    endpoints = EndpointService(control, events, brokers, settings.event_endpoints_per_event)
    dispatcher = Dispatcher(
        control,
        events,
        endpoints,
        brokers,
        Leases(control, lease),
        settings.poll_seconds,
        settings.webhook_timeout,
    )
    endpoints.changed = dispatcher.wake
    notifier.also_wake(dispatcher.wake)  # events were logged
    services = Services(
        auth,
        tenant,
        integrations,
        add_ins,
        dualwrite,
        initial,
        writes,
        events,
        stream,
        endpoints,
        dispatcher,
    )
    tracker = ChangeTracker(
        dualwrite, notifier, Leases(control, lease), settings.track_seconds, settings.job_tries
    )
    tracker.track_raising(endpoints.raising_entities)
    return services, runner, notifier, linked, tracker


async def _has_metadata(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: sa_inspect(c).has_table("sysdataentity"))
