"""The Power Platform integration in GraphQL: prerequisites, setup, its live status,
resume and unlink, add-ins and the dual-write application.

Reading needs the reader role. Changing needs the environment administrator (the
services check who that is); admins of the gateway are not enough on their own.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from gateway.auth import Role
from gateway.kernel.errors import BadUserInput, GatewayError
from gateway.kernel.setup import Template
from schema.context import RequestContext
from schema.control_types import AddIn, AddInInstallation, IntegrationStatus, PrerequisiteCheck

log = logging.getLogger("gateway.subscriptions")


def _reader(info: strawberry.Info) -> RequestContext:
    context: RequestContext = info.context
    context.require(Role.READER)
    return context


def _actor(info: strawberry.Info) -> tuple[RequestContext, str]:
    context: RequestContext = info.context
    return context, context.authenticated().subject


@strawberry.field(
    name="integrationPrerequisites",
    description="Every prerequisite of linking the environment, with how to fix a failing one.",
)
async def integration_prerequisites(
    info: strawberry.Info, environment: str
) -> list[PrerequisiteCheck]:
    checks = await _reader(info).control.integrations.prerequisites(environment)
    return [PrerequisiteCheck(name=c.name, passed=c.passed, message=c.message) for c in checks]


@strawberry.field(name="integrationStatus", description="Where the integration stands now.")
async def integration_status(info: strawberry.Info, environment: str) -> IntegrationStatus:
    return IntegrationStatus.of(await _reader(info).control.integrations.status(environment))


@strawberry.field(name="addIns", description="The add-ins that can be installed.")
def add_ins(info: strawberry.Info) -> list[AddIn]:
    return [AddIn.of(a) for a in _reader(info).control.add_ins.catalog()]


@strawberry.field(name="addInInstallations", description="Add-ins installed or installing.")
async def add_in_installations(info: strawberry.Info, environment: str) -> list[AddInInstallation]:
    found = await _reader(info).control.add_ins.installations(environment)
    return [AddInInstallation.of(a) for a in found]


QUERIES = [integration_prerequisites, integration_status, add_ins, add_in_installations]


@strawberry.mutation(
    name="setupPowerPlatformIntegration",
    description="Start linking the environment to a new Dataverse environment of the same "
    "name, or to an existing one. Follow it with the integrationStatus subscription.",
)
async def setup_integration(
    info: strawberry.Info,
    environment: str,
    accept_terms: Annotated[bool, strawberry.argument(name="acceptTerms")],
    template: Template = Template.STANDARD,
    existing_dataverse_environment: Annotated[
        str | None, strawberry.argument(name="existingDataverseEnvironment")
    ] = None,
) -> IntegrationStatus:
    context, actor = _actor(info)
    found = await context.control.integrations.setup(
        actor, environment, accept_terms, template, existing_dataverse_environment
    )
    return IntegrationStatus.of(found)


@strawberry.mutation(
    name="resumeIntegrationSetup", description="Continue a failed setup from its failed stage."
)
async def resume_integration_setup(info: strawberry.Info, environment: str) -> IntegrationStatus:
    context, actor = _actor(info)
    return IntegrationStatus.of(await context.control.integrations.resume(actor, environment))


@strawberry.mutation(
    name="unlinkPowerPlatformIntegration",
    description="Undo the link. Type the environment name to confirm; the Dataverse "
    "environment is removed (freeing its capacity) or kept to link again.",
)
async def unlink_integration(
    info: strawberry.Info,
    environment: str,
    confirm_environment_name: Annotated[str, strawberry.argument(name="confirmEnvironmentName")],
    remove_dataverse_environment: Annotated[
        bool, strawberry.argument(name="removeDataverseEnvironment")
    ] = False,
) -> IntegrationStatus:
    context, actor = _actor(info)
    found = await context.control.integrations.unlink(
        actor, environment, confirm_environment_name, remove_dataverse_environment
    )
    return IntegrationStatus.of(found)


@strawberry.mutation(name="installAddIn", description="Start installing an add-in.")
async def install_add_in(
    info: strawberry.Info,
    environment: str,
    add_in: Annotated[str, strawberry.argument(name="addIn")],
    accept_terms: Annotated[bool, strawberry.argument(name="acceptTerms")],
    parameters: JSON | None = None,
) -> AddInInstallation:
    context, actor = _actor(info)
    given = dict(parameters) if isinstance(parameters, dict) else None
    if parameters is not None and given is None:
        raise BadUserInput("parameters is a JSON object of parameter name to value")
    found = await context.control.add_ins.install(actor, environment, add_in, given, accept_terms)
    return AddInInstallation.of(found)


@strawberry.mutation(name="retryAddIn", description="Install a failed add-in again.")
async def retry_add_in(
    info: strawberry.Info,
    environment: str,
    add_in: Annotated[str, strawberry.argument(name="addIn")],
) -> AddInInstallation:
    context, actor = _actor(info)
    return AddInInstallation.of(await context.control.add_ins.retry(actor, environment, add_in))


@strawberry.mutation(name="uninstallAddIn", description="Remove an add-in and its configuration.")
async def uninstall_add_in(
    info: strawberry.Info,
    environment: str,
    add_in: Annotated[str, strawberry.argument(name="addIn")],
) -> AddInInstallation:
    context, actor = _actor(info)
    found = await context.control.add_ins.uninstall(actor, environment, add_in)
    return AddInInstallation.of(found)


@strawberry.mutation(
    name="installDualWriteApplication",
    description="Install the dual-write application's maps into the Dataverse environment.",
)
async def install_dual_write_application(
    info: strawberry.Info, environment: str
) -> AddInInstallation:
    context, actor = _actor(info)
    found = await context.control.add_ins.install_dual_write_application(actor, environment)
    return AddInInstallation.of(found)


MUTATIONS = [
    setup_integration,
    resume_integration_setup,
    unlink_integration,
    install_add_in,
    retry_add_in,
    uninstall_add_in,
    install_dual_write_application,
]


@strawberry.subscription(
    name="integrationStatus",
    description="Every change of the integration's status. Without `after`, the current "
    "status comes first; with the cursor of the last status seen, nothing is missed.",
)
async def watch_integration_status(
    info: strawberry.Info, environment: str, after: str | None = None
) -> AsyncGenerator[IntegrationStatus, None]:
    context = _reader(info)
    try:
        async for found in context.control.integrations.watch(environment, after):
            yield IntegrationStatus.of(found)
    except GatewayError:
        raise
    except Exception as exc:  # masked for the listener, logged in full under an id
        incident = uuid.uuid4().hex[:12]
        log.error("status stream of %s failed (incident %s)", environment, incident, exc_info=exc)
        raise GatewayError(
            f"internal error; the gateway log has the details under id {incident}"
        ) from None


SUBSCRIPTIONS = [watch_integration_status]
