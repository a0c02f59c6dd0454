"""`IntegrationService`: set up, follow, resume and undo the Power Platform integration.

`setup` checks the prerequisites and submits a durable job; `step` runs one stage of
it (the job runner calls it until the job is done). Each stage is idempotent and
re-checks what it depends on at the moment it runs, so a failure names the stage and
the cause, and `resume` continues from there once the cause is fixed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.dataverse import store as dataverse
from datasources.dataverse.provisioner import Location
from datasources.odata.endpoint import is_odata
from datasources.sql.integration import record_dataverse_link, remove_dataverse_link
from datasources.sql.metadata import sysdataentity
from datasources.sql.stores import connect, probe, redact
from gateway import jobs
from gateway.feed import Notifier
from gateway.kernel.errors import (
    BadUserInput,
    Conflict,
    Forbidden,
    GatewayError,
    PrerequisiteFailed,
)
from gateway.kernel.setup import (
    DATAVERSE_RESERVATION,
    PLATFORM_COMPONENTS,
    Check,
    SetupState,
    Stage,
    Template,
    check_prerequisites,
    failing,
    next_stage,
)
from gateway.kernel.tenant import GIB
from gateway.setup import status
from gateway.setup.reach import published, reach
from gateway.setup.status import IntegrationStatus, add_in_installation, integration, now
from gateway.tenant import Environment, TenantService

JOB_KIND = "integration-setup"
log = logging.getLogger("gateway.setup")


@dataclass(frozen=True)
class _Job:
    environment: Environment
    state: SetupState
    stage: Stage
    template: Template
    dataverse_environment: str
    existing: bool
    link_id: str


class IntegrationService:
    def __init__(
        self,
        control: AsyncEngine,
        tenant: TenantService,
        location: Location,
        notifier: Notifier,
        wake: Callable[[], None],
    ) -> None:
        self._control = control
        self._tenant = tenant
        self._location = location
        self._notifier = notifier
        self._wake = wake
        self._link_listeners: list[Callable[[], Awaitable[None]]] = []
        self._stages: dict[Stage, Callable[[_Job], Awaitable[None]]] = {
            Stage.VALIDATE: self._validate,
            Stage.CREATE_DATAVERSE_ENVIRONMENT: self._create_dataverse,
            Stage.INSTALL_PLATFORM_COMPONENTS: self._install_components,
            Stage.LINK_ENVIRONMENTS: self._link,
        }

    def on_link_change(self, listener: Callable[[], Awaitable[None]]) -> None:
        """Call `listener` after a setup completes or a link is undone."""
        self._link_listeners.append(listener)

    async def _link_changed(self) -> None:
        for listener in self._link_listeners:
            try:
                await listener()
            except Exception:  # the link stands; what follows it is retried at the next change
                log.exception("a listener of the Dataverse link failed")

    # reading

    async def prerequisites(self, environment: str) -> list[Check]:
        return check_prerequisites(await self._tenant.facts(environment))

    async def status(self, environment: str) -> IntegrationStatus:
        await self._tenant.environment(environment)
        async with self._control.connect() as conn:
            # the cursor first: a change landing in between is then delivered again
            # (at least once), never skipped
            cursor = await status.latest_cursor(conn, environment)
            current = await status.snapshot(conn, environment)
        return _with_cursor(current, cursor)

    async def watch(self, environment: str, after: str | None) -> AsyncIterator[IntegrationStatus]:
        """Every status change after the cursor, then each new one as it happens; with no
        cursor, the current status first."""
        cursor = _parse_cursor(after)
        if cursor is None:
            current = await self.status(environment)
            yield current
            cursor = int(current.cursor)
        else:
            await self._tenant.environment(environment)
        while True:
            async with self._control.connect() as conn:
                changes = await status.history(conn, environment, cursor)
            for change in changes:
                cursor = int(change.cursor)
                yield change
            if not changes:
                await self._notifier.wait()

    # changing

    async def setup(
        self,
        actor: str,
        environment: str,
        accept_terms: bool,
        template: Template,
        existing_dataverse: str | None = None,
    ) -> IntegrationStatus:
        env = await self._tenant.environment(environment)
        require_administrator(actor, env, "set up the Power Platform integration for")
        if not accept_terms:
            raise BadUserInput(
                "read and accept the terms and conditions (acceptTerms: true) to set up the "
                "integration"
            )
        current = await self.status(environment)
        if current.state is not SetupState.NOT_LINKED:
            raise Conflict(
                f"{environment} is already {current.state.value.lower().replace('_', ' ')}: "
                + (
                    "resume it (resumeIntegrationSetup)"
                    if current.state is SetupState.FAILED
                    else "unlink it first to set it up again"
                )
            )
        checks = await self.prerequisites(environment)
        if existing_dataverse is not None:
            checks.append(await self._existing_check(environment, existing_dataverse))
            template = Template.STANDARD  # as when linking an existing environment
        _refuse_failing(checks, "setup cannot start")
        values = {
            "state": SetupState.IN_PROGRESS.value,
            "stage": Stage.VALIDATE.value,
            "template": template.value,
            "dataverse_environment": existing_dataverse or environment,
            "existing": existing_dataverse is not None,
            "error": None,
            "link_id": str(uuid.uuid4()),
            "requested_by": actor,
            "started_at": now(),
            "updated_at": now(),
            "completed_at": None,
        }
        async with self._control.begin() as conn:
            await conn.execute(delete(integration).where(integration.c.environment == environment))
            await conn.execute(insert(integration).values(environment=environment, **values))
            await status.record(conn, environment)
            await jobs.submit(conn, JOB_KIND, environment)
        self._changed()
        return await self.status(environment)

    async def resume(self, actor: str, environment: str) -> IntegrationStatus:
        env = await self._tenant.environment(environment)
        require_administrator(actor, env, "resume the setup of")
        current = await self.status(environment)
        if current.state is not SetupState.FAILED:
            raise Conflict(
                f"only a failed setup can be resumed; {environment} is "
                f"{current.state.value.lower().replace('_', ' ')}"
            )
        _refuse_failing(await self.prerequisites(environment), "setup cannot resume")
        async with self._control.begin() as conn:
            await conn.execute(
                update(integration)
                .where(integration.c.environment == environment)
                .values(state=SetupState.IN_PROGRESS.value, error=None, updated_at=now())
            )
            await status.record(conn, environment)
            await jobs.submit(conn, JOB_KIND, environment)
        self._changed()
        return await self.status(environment)

    async def unlink(
        self, actor: str, environment: str, confirm: str, remove_dataverse: bool
    ) -> IntegrationStatus:
        """Undo the link (Microsoft's cannot be undone). The Dataverse environment is
        removed, freeing its capacity, or kept to be linked again."""
        env = await self._tenant.environment(environment)
        require_administrator(actor, env, "unlink")
        if confirm != environment:
            raise BadUserInput(
                f'type the environment name exactly ("{environment}") to confirm the unlink'
            )
        job = await self._job(environment)
        if job is None or job.state not in (SetupState.COMPLETED, SetupState.FAILED):
            state = job.state.value.lower().replace("_", " ") if job else "not linked"
            raise Conflict(f"{environment} is {state}; only a completed or failed setup unlinks")
        dv = await self._tenant.dataverse_environment(job.dataverse_environment)
        if remove_dataverse and dv is not None and not dv.managed:
            raise BadUserInput(
                f"{dv.name} was linked as an existing environment, so it is kept: unlink with "
                "removeDataverseEnvironment: false"
            )
        if not is_odata(env.fno_url) and await _exists(env.fno_url):
            async with connect(env.fno_url, write=True) as conn:
                await remove_dataverse_link(conn)
        if dv is not None and not remove_dataverse:
            records = self._location.platform_for(dv.name, dv.url)
            if await _exists(records):
                async with connect(records, write=True) as conn:
                    await dataverse.remove_link(conn)
        async with self._control.begin() as conn:
            await conn.execute(
                delete(add_in_installation).where(add_in_installation.c.environment == environment)
            )
            await conn.execute(delete(integration).where(integration.c.environment == environment))
            await status.record(conn, environment)
        self._changed()
        # the gateway lets go of the Dataverse store (schema, sync, tracking) before it
        # goes: a round still reading it would otherwise open the removed store anew
        await self._link_changed()
        if dv is not None and remove_dataverse:
            await self._location.drop(dv.url)
            await self._tenant.forget_dataverse_environment(dv.name)
        return await self.status(environment)

    # the job

    async def step(self, environment: str) -> bool:
        """Run the current stage; True while stages remain."""
        job = await self._job(environment)
        if job is None or job.state is not SetupState.IN_PROGRESS:
            return False
        try:
            await self._stages[job.stage](job)
        except GatewayError as exc:
            await self._move(environment, SetupState.FAILED, job.stage, exc.message)
            return False
        following = next_stage(job.stage)
        done = following is Stage.COMPLETED
        await self._move(
            environment, SetupState.COMPLETED if done else SetupState.IN_PROGRESS, following
        )
        if done:
            await self._link_changed()
        return not done

    async def _validate(self, job: _Job) -> None:
        _refuse_failing(await self.prerequisites(job.environment.name), "the prerequisites fail")
        env = job.environment
        await _reach_fno(env)
        if is_odata(env.fno_url):
            publishes = bool(await published(env.fno_url))
        else:
            async with connect(env.fno_url, write=False) as conn:
                publishes = await conn.run_sync(
                    lambda c: c.dialect.has_table(c, sysdataentity.name)
                )
        if not publishes:
            raise GatewayError(
                f"the F&O store at {env.display_url} publishes no data entities: point the "
                "environment at its F&O store (updateEnvironment fnoStoreUrl:)"
            )

    async def _create_dataverse(self, job: _Job) -> None:
        name = job.dataverse_environment
        known = await self._tenant.dataverse_environment(name)
        if job.existing:
            if known is None:
                raise GatewayError(f"the Dataverse environment {name} is no longer registered")
            await _check_existing(name, known.url)
            if is_odata(known.url):  # its tables are there; the gateway's records here
                async with connect(await self._location.create(name), write=True) as conn:
                    await dataverse.create_platform_tables(conn)
            return
        if known is not None and not known.managed:
            raise GatewayError(
                f"a Dataverse environment named {name} is registered already: link it as "
                "an existing environment, or give this one another name"
            )
        if known is None:
            available = (await self._tenant.capacity()).available_bytes
            if available < DATAVERSE_RESERVATION:
                raise GatewayError(
                    f"not enough Dataverse capacity: {available / GIB:.2f} GB is available and "
                    f"the environment needs {DATAVERSE_RESERVATION / GIB:.0f} GB: free some or "
                    "add capacity (setDatabaseCapacity)"
                )
        url = known.url if known is not None else await self._location.create(name)
        async with connect(url, write=True) as conn:
            await dataverse.create_native_tables(conn)
        if known is None:
            await self._tenant.add_managed_dataverse_environment(name, url, DATAVERSE_RESERVATION)

    async def _install_components(self, job: _Job) -> None:
        facts = await self._tenant.facts(job.environment.name)
        if facts.administrator is None or not facts.administrator.licences:
            raise GatewayError(
                f"the environment administrator {facts.administrator_email} no longer holds a "
                "licence, which installing the platform components needs: assign one "
                "(assignLicence)"
            )
        _, records = await self._dataverse_url(job)
        async with connect(records, write=True) as conn:
            await dataverse.install_solutions(conn, PLATFORM_COMPONENTS[job.template])

    async def _link(self, job: _Job) -> None:
        env = job.environment
        url, records = await self._dataverse_url(job)
        await _reach_fno(env)
        tenant = await self._tenant.tenant()
        async with connect(records, write=True) as conn:
            details = {
                "environment": env.name,
                "url": env.display_url,
                "tenantid": tenant.tenant_id,
            }
            await dataverse.record_link(conn, job.link_id, details)
        if is_odata(env.fno_url):
            return  # F&O's service keeps no records of the gateway's: the link is here
        async with connect(env.fno_url, write=True) as conn:
            await record_dataverse_link(conn, job.link_id, job.dataverse_environment, redact(url))

    async def _dataverse_url(self, job: _Job) -> tuple[str, str]:
        """The linked Dataverse environment's URL, and where its platform records are;
        once it answers."""
        known = await self._tenant.dataverse_environment(job.dataverse_environment)
        if known is None:
            raise GatewayError(
                f"the Dataverse environment {job.dataverse_environment} is gone; unlink and set "
                "up again"
            )
        try:
            await reach(known.url)
        except GatewayError as exc:
            raise GatewayError(
                f"the Dataverse environment {known.name} cannot be reached ({exc.message}): "
                "bring its store back, then resume"
            ) from exc
        return known.url, self._location.platform_for(known.name, known.url)

    async def _existing_check(self, environment: str, name: str) -> Check:
        known = await self._tenant.dataverse_environment(name)
        if known is None:
            return Check(
                "DATAVERSE_ENVIRONMENT",
                False,
                f"no Dataverse environment named {name!r} is registered: register it "
                "(registerDataverseEnvironment)",
            )
        async with self._control.connect() as conn:
            other = await conn.scalar(
                select(integration.c.environment).where(
                    integration.c.dataverse_environment == name,
                    integration.c.environment != environment,
                )
            )
        if other is not None:
            return Check("DATAVERSE_ENVIRONMENT", False, f"{name} is linked to {other} already")
        try:
            await _check_existing(name, known.url)
        except GatewayError as exc:
            return Check("DATAVERSE_ENVIRONMENT", False, exc.message)
        return Check("DATAVERSE_ENVIRONMENT", True, f"{name} has Dynamics 365 apps enabled")

    async def _job(self, environment: str) -> _Job | None:
        async with self._control.connect() as conn:
            row = (
                await conn.execute(
                    select(integration).where(integration.c.environment == environment)
                )
            ).first()
        if row is None:
            return None
        return _Job(
            environment=await self._tenant.environment(environment),
            state=SetupState(row.state),
            stage=Stage(row.stage),
            template=Template(row.template),
            dataverse_environment=row.dataverse_environment,
            existing=row.existing,
            link_id=row.link_id,
        )

    async def _move(
        self, environment: str, state: SetupState, stage: Stage, error: str | None = None
    ) -> None:
        values: dict[str, object] = {
            "state": state.value,
            "stage": stage.value,
            "error": error,
            "updated_at": now(),
        }
        if state is SetupState.COMPLETED:
            values["completed_at"] = now()
        async with self._control.begin() as conn:
            await conn.execute(
                update(integration).where(integration.c.environment == environment).values(**values)
            )
            await status.record(conn, environment)
        self._notifier.notify()

    def _changed(self) -> None:
        self._notifier.notify()
        self._wake()


def require_administrator(actor: str, env: Environment, doing: str) -> None:
    if env.administrator is None or actor.strip().lower() != env.administrator:
        raise Forbidden(
            f"only the environment administrator ({env.administrator or 'none named'}) may "
            f"{doing} {env.name}; {actor} is not"
        )


def _refuse_failing(checks: list[Check], what: str) -> None:
    failed = failing(checks)
    if failed:
        raise PrerequisiteFailed(
            f"{what}: " + "; ".join(c.message for c in failed),
            failing=[c.name for c in failed],
        )


async def _check_existing(name: str, url: str) -> None:
    if is_odata(url):  # reading its $metadata reaches it
        missing = dataverse.missing_of(await published(url))
    else:
        await probe(url)
        async with connect(url, write=False) as conn:
            missing = await dataverse.missing_native_tables(conn)
    if missing:
        raise GatewayError(
            f"the Dataverse environment {name} was not created with Dynamics 365 apps enabled "
            f"(it has no {', '.join(missing)} table): create it with them, or let setup create "
            "a new one"
        )


async def _exists(url: str) -> bool:
    try:
        await reach(url)
    except GatewayError:
        return False
    return True


async def _reach_fno(env: Environment) -> None:
    try:
        await reach(env.fno_url)
    except GatewayError as exc:
        raise GatewayError(
            f"the F&O store of {env.name} cannot be reached ({exc.message}): fix it or point "
            "the environment at its store (updateEnvironment fnoStoreUrl:), then resume"
        ) from exc


def _parse_cursor(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isdigit():
        raise BadUserInput(f"{after!r} is not a status cursor; pass the cursor of a status")
    return int(after)


def _with_cursor(current: IntegrationStatus, cursor: int) -> IntegrationStatus:
    return replace(current, cursor=str(cursor))
