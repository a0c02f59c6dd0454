"""`AddInService`: install, retry and uninstall environment add-ins (and the dual-write
application, which installs the same way). Installs are durable jobs; each add-in's
configuration is kept in the environment's Dataverse store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.dataverse import store as dataverse
from datasources.dataverse.provisioner import Location
from datasources.sql.stores import connect
from gateway import jobs
from gateway.events.log import raise_control_event
from gateway.feed import Notifier
from gateway.kernel.addins import (
    ADD_INS,
    DUAL_WRITE_APPLICATION,
    AddIn,
    InstallState,
    find_add_in,
    validate_parameters,
)
from gateway.kernel.dual_write_maps import OUT_OF_THE_BOX_MAPS
from gateway.kernel.errors import BadUserInput, Conflict, GatewayError, NotFound, PrerequisiteFailed
from gateway.kernel.events import BY_ID
from gateway.kernel.json import dumps, loads
from gateway.kernel.setup import DATAVERSE_RESERVATION, SetupState
from gateway.kernel.tenant import GIB
from gateway.setup import status
from gateway.setup.reach import reach
from gateway.setup.service import require_administrator
from gateway.setup.status import AddInInstallation, add_in_installation, integration, now
from gateway.tenant import TenantService
from gateway.tenant import dataverse_environment as dataverse_environment_table

JOB_KIND = "add-in"
_SEP = "/"


class AddInService:
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

    @staticmethod
    def catalog() -> tuple[AddIn, ...]:
        return ADD_INS

    async def installations(self, environment: str) -> list[AddInInstallation]:
        await self._tenant.environment(environment)
        async with self._control.connect() as conn:
            return await status.installations(conn, environment)

    async def installation(self, environment: str, add_in: str) -> AddInInstallation:
        found = next((i for i in await self.installations(environment) if i.add_in == add_in), None)
        if found is None:
            raise NotFound(f"{add_in} is not installed in {environment}")
        return found

    async def install(
        self,
        actor: str,
        environment: str,
        name: str,
        parameters: dict[str, Any] | None,
        accept_terms: bool,
    ) -> AddInInstallation:
        add_in = find_add_in(name)
        env = await self._tenant.environment(environment)
        require_administrator(actor, env, f"install {add_in.title} in")
        if not accept_terms:
            raise BadUserInput(
                f"read and accept the terms and conditions of {add_in.title} (acceptTerms: true)"
            )
        if env.type not in add_in.environment_types:
            allowed = ", ".join(sorted(t.value.lower() for t in add_in.environment_types))
            raise BadUserInput(
                f"{add_in.title} installs only in {allowed} environments; {env.name} is "
                f"{env.type.value.lower()}"
            )
        values = validate_parameters(add_in, parameters)
        await self._check_ready(environment, add_in)
        async with self._control.begin() as conn:
            current = (
                await conn.execute(
                    select(add_in_installation.c.state).where(
                        add_in_installation.c.environment == environment,
                        add_in_installation.c.add_in == add_in.name,
                    )
                )
            ).scalar()
            if current is not None and current != InstallState.FAILED:
                raise Conflict(
                    f"{add_in.title} is {current.lower()} in {environment}"
                    + ("; retry it (retryAddIn) or uninstall it" if current == "FAILED" else "")
                )
            await conn.execute(
                delete(add_in_installation).where(
                    add_in_installation.c.environment == environment,
                    add_in_installation.c.add_in == add_in.name,
                )
            )
            await conn.execute(
                insert(add_in_installation).values(
                    environment=environment,
                    add_in=add_in.name,
                    state=InstallState.INSTALLING.value,
                    parameters=dumps(values),
                    error=None,
                    requested_by=actor,
                    updated_at=now(),
                    installed_at=None,
                )
            )
            await self._submit(conn, environment, add_in.name)
        self._changed()
        return await self.installation(environment, add_in.name)

    async def install_dual_write_application(
        self, actor: str, environment: str
    ) -> AddInInstallation:
        return await self.install(actor, environment, DUAL_WRITE_APPLICATION.name, None, True)

    async def retry(self, actor: str, environment: str, name: str) -> AddInInstallation:
        return await self._again(actor, environment, name, InstallState.INSTALLING, "retry")

    async def uninstall(self, actor: str, environment: str, name: str) -> AddInInstallation:
        return await self._again(actor, environment, name, InstallState.UNINSTALLING, "uninstall")

    async def _again(
        self, actor: str, environment: str, name: str, to: InstallState, verb: str
    ) -> AddInInstallation:
        add_in = find_add_in(name)
        env = await self._tenant.environment(environment)
        require_administrator(actor, env, f"{verb} {add_in.title} in")
        current = await self.installation(environment, add_in.name)
        allowed = {
            InstallState.INSTALLING: {InstallState.FAILED},
            InstallState.UNINSTALLING: {InstallState.FAILED, InstallState.INSTALLED},
        }[to]
        if current.state not in allowed:
            raise Conflict(
                f"{add_in.title} is {current.state.value.lower()} in {environment}; "
                f"only {' or '.join(sorted(s.value.lower() for s in allowed))} add-ins {verb}"
            )
        if to is InstallState.INSTALLING:
            await self._check_ready(environment, add_in)
        async with self._control.begin() as conn:
            await conn.execute(
                update(add_in_installation)
                .where(
                    add_in_installation.c.environment == environment,
                    add_in_installation.c.add_in == add_in.name,
                )
                .values(state=to.value, error=None, updated_at=now())
            )
            await self._submit(conn, environment, add_in.name)
        self._changed()
        return await self.installation(environment, add_in.name)

    async def step(self, key: str) -> bool:
        """Install or uninstall; always one step."""
        environment, _, name = key.rpartition(_SEP)
        async with self._control.connect() as conn:
            row = (
                await conn.execute(
                    select(add_in_installation).where(
                        add_in_installation.c.environment == environment,
                        add_in_installation.c.add_in == name,
                    )
                )
            ).first()
        if row is None or row.state not in (InstallState.INSTALLING, InstallState.UNINSTALLING):
            return False
        add_in = find_add_in(name)
        try:
            url = await self._dataverse_url(environment)
            if row.state == InstallState.INSTALLING:
                await self._check_ready(environment, add_in)
                async with connect(url, write=True) as conn:
                    await dataverse.save_add_in(conn, add_in.name, loads(row.parameters))
                    if add_in is DUAL_WRITE_APPLICATION:
                        await dataverse.install_map_definitions(conn, OUT_OF_THE_BOX_MAPS)
            else:
                async with connect(url, write=True) as conn:
                    await dataverse.remove_add_in(conn, add_in.name)
                    if add_in is DUAL_WRITE_APPLICATION:
                        await dataverse.remove_map_definitions(conn)
        except GatewayError as exc:
            await self._settle(environment, name, InstallState.FAILED, exc.message)
            return False
        if row.state == InstallState.INSTALLING:
            await self._settle(environment, name, InstallState.INSTALLED)
        else:
            await self._settle(environment, name, InstallState.NOT_INSTALLED)
        return False

    async def _check_ready(self, environment: str, add_in: AddIn) -> None:
        """What every install needs, checked when asked and again when it runs."""
        problems: list[str] = []
        async with self._control.connect() as conn:
            state = await conn.scalar(
                select(integration.c.state).where(integration.c.environment == environment)
            )
            dual_write = await conn.scalar(
                select(add_in_installation.c.state).where(
                    add_in_installation.c.environment == environment,
                    add_in_installation.c.add_in == DUAL_WRITE_APPLICATION.name,
                )
            )
        if state != SetupState.COMPLETED:
            problems.append(
                f"the Power Platform integration of {environment} is not completed: set it up "
                "first (setupPowerPlatformIntegration)"
            )
        if add_in.needs_dual_write and dual_write != InstallState.INSTALLED:
            problems.append(
                f"{add_in.title} needs dual-write: install the dual-write application first "
                "(installDualWriteApplication)"
            )
        facts = await self._tenant.facts(environment)
        if facts.administrator is None or not facts.administrator.licences:
            problems.append(
                f"the environment administrator {facts.administrator_email} needs a licence "
                "(assignLicence)"
            )
        if facts.available_bytes < DATAVERSE_RESERVATION:
            problems.append(
                f"only {facts.available_bytes / GIB:.2f} GB of Dataverse capacity is available; "
                f"add-ins need {DATAVERSE_RESERVATION / GIB:.0f} GB (setDatabaseCapacity)"
            )
        if problems:
            raise PrerequisiteFailed("; ".join(problems), problems=problems)

    async def _dataverse_url(self, environment: str) -> str:
        """Where the linked environment's platform records are (once it answers)."""
        async with self._control.connect() as conn:
            found = (
                await conn.execute(
                    select(dataverse_environment_table.c.name, dataverse_environment_table.c.url)
                    .select_from(
                        integration.join(
                            dataverse_environment_table,
                            dataverse_environment_table.c.name
                            == integration.c.dataverse_environment,
                        )
                    )
                    .where(integration.c.environment == environment)
                )
            ).first()
        if found is None:
            raise GatewayError(f"{environment} has no linked Dataverse environment")
        await reach(found.url)
        return self._location.platform_for(found.name, found.url)

    async def _settle(
        self, environment: str, name: str, state: InstallState, error: str | None = None
    ) -> None:
        where = (
            add_in_installation.c.environment == environment,
            add_in_installation.c.add_in == name,
        )
        async with self._control.begin() as conn:
            if state is InstallState.NOT_INSTALLED:
                await conn.execute(delete(add_in_installation).where(*where))
            else:
                values: dict[str, object] = {"state": state.value, "error": error}
                values["updated_at"] = now()
                if state is InstallState.INSTALLED:
                    values["installed_at"] = now()
                    await raise_control_event(
                        conn,
                        BY_ID["AddInInstalledBusinessEvent"],
                        "",
                        {"Environment": environment, "AddIn": name},
                    )
                await conn.execute(update(add_in_installation).where(*where).values(**values))
            await status.record(conn, environment)
        self._notifier.notify()

    async def _submit(self, conn: Any, environment: str, name: str) -> None:
        await status.record(conn, environment)
        await jobs.submit(conn, JOB_KIND, f"{environment}{_SEP}{name}")

    def _changed(self) -> None:
        self._notifier.notify()
        self._wake()
