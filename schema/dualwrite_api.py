"""Dual-write maps in GraphQL: list them with their state, problems, initial-sync
progress and errors; run (with or without initial sync) and stop them (admin)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from gateway.auth import Role
from gateway.dualwrite.service import MapView
from gateway.kernel.dualwrite import AlertAction, Direction, MapAction, MapState, Master
from gateway.kernel.errors import BadUserInput
from schema.context import RequestContext

strawberry.enum(Direction, name="MappingDirection")
strawberry.enum(MapState, name="DualWriteMapState")
strawberry.enum(MapAction, name="DualWriteMapAction")
strawberry.enum(Master, name="ConflictMaster", description="Which side wins a conflict.")
strawberry.enum(AlertAction, name="DualWriteAlertAction")


@strawberry.type(description="One field of a map: where it comes from and goes to.")
class FieldMappingView:
    fno: str = strawberry.field(description="The F&O field; empty: a default only.")
    dataverse: str = strawberry.field(description="The Dataverse column; empty: a default only.")
    direction: Direction
    default: str | None


@strawberry.type(description="Why a map cannot run.")
class MapProblem:
    code: str
    message: str


@strawberry.type(description="Initial sync of one legal entity (blank: a cross-company map).")
class InitialSyncProgress:
    company: str
    copied: int
    failed: int
    done: bool
    updated_at: dt.datetime = strawberry.field(name="updatedAt")


@strawberry.type(description="A row the other side refused, with its message.")
class DualWriteError:
    id: strawberry.ID = strawberry.field(description="Give it to retryDualWriteErrors.")
    company: str
    source: str = strawberry.field(description="The side the row was read from.")
    key: JSON
    message: str
    at: dt.datetime


@strawberry.type(description="A line of a map's activity log.")
class DualWriteActivity:
    at: dt.datetime
    kind: str = strawberry.field(
        description="STATE, INITIAL_SYNC, CATCH_UP, TRACKED (rows written directly to a "
        "store), REFUSED, ALERT or ERROR."
    )
    message: str


@strawberry.type(description="What happens when a map's errors pile up.")
class DualWriteAlert:
    action: AlertAction
    errors: int
    within_minutes: int = strawberry.field(name="withinMinutes")
    fired_at: dt.datetime | None = strawberry.field(name="firedAt")


@strawberry.type(description="A dual-write map between an F&O entity and a Dataverse table.")
class DualWriteMap:
    name: str
    fno_entity: str = strawberry.field(name="fnoEntity")
    dataverse_table: str = strawberry.field(name="dataverseTable")
    company_specific: bool = strawberry.field(name="companySpecific")
    key: list[list[str]]
    fields: list[FieldMappingView]
    depends_on: list[str] = strawberry.field(name="dependsOn")
    state: MapState
    master: Master
    problems: list[MapProblem]
    available_actions: list[MapAction] = strawberry.field(name="availableActions")
    updated_at: dt.datetime | None = strawberry.field(name="updatedAt")
    initial_sync: list[InitialSyncProgress] = strawberry.field(name="initialSync")
    errors: list[DualWriteError] = strawberry.field(description="The latest, newest first.")
    error_count: int = strawberry.field(name="errorCount")
    queued: int = strawberry.field(description="Changes waiting while paused or resuming.")
    activity: list[DualWriteActivity] = strawberry.field(description="The latest, newest first.")
    alerts: list[DualWriteAlert]
    queue_alert: bool = strawberry.field(
        name="queueAlert", description="More changes wait than GATEWAY_QUEUE_ALERT."
    )

    @staticmethod
    def of(view: MapView) -> DualWriteMap:
        m = view.definition
        return DualWriteMap(
            name=m.name,
            fno_entity=m.fno_entity,
            dataverse_table=m.dataverse_table,
            company_specific=m.company_specific,
            key=[list(pair) for pair in m.key],
            fields=[
                FieldMappingView(
                    fno=f.fno,
                    dataverse=f.dataverse,
                    direction=f.direction,
                    default=None if f.default is None else str(f.default),
                )
                for f in m.fields
            ],
            depends_on=list(m.depends_on),
            state=view.state,
            master=view.master,
            problems=[MapProblem(code=p.code, message=p.message) for p in view.problems],
            available_actions=view.actions,
            updated_at=view.updated_at,
            initial_sync=[
                InitialSyncProgress(
                    company=p.company.upper(),
                    copied=p.copied,
                    failed=p.failed,
                    done=p.done,
                    updated_at=p.updated_at,
                )
                for p in view.progress
            ],
            errors=[
                DualWriteError(
                    id=strawberry.ID(str(e.id)),
                    company=e.company.upper(),
                    source=e.source.value,
                    key=cast(JSON, e.key),
                    message=e.message,
                    at=e.at,
                )
                for e in view.errors
            ],
            error_count=view.error_count,
            queued=view.queued,
            queue_alert=view.queue_alert,
            activity=[
                DualWriteActivity(at=a.at, kind=a.kind, message=a.message) for a in view.activity
            ],
            alerts=[
                DualWriteAlert(
                    action=r.action,
                    errors=r.errors,
                    within_minutes=r.window_minutes,
                    fired_at=r.fired_at,
                )
                for r in view.alerts
            ],
        )


@strawberry.field(name="dualWriteMaps", description="The linked environment's maps.")
async def dual_write_maps(info: strawberry.Info) -> list[DualWriteMap]:
    context: RequestContext = info.context
    context.require(Role.READER)
    return [DualWriteMap.of(v) for v in await context.control.dualwrite.maps()]


@strawberry.mutation(
    name="runDualWriteMap",
    description="Run a map and the maps it depends on. From now on every write through "
    "the gateway to either side is carried to the other, both or neither. With "
    "initialSync, the rows that exist already are copied first, from the master.",
)
async def run_dual_write_map(
    info: strawberry.Info,
    name: str,
    master: Master = Master.DATAVERSE,
    initial_sync: Annotated[bool, strawberry.argument(name="initialSync")] = False,
) -> list[DualWriteMap]:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    started = await context.control.dualwrite.run(name, master, initial_sync)
    return [DualWriteMap.of(v) for v in started]


@strawberry.mutation(name="stopDualWriteMap", description="Stop carrying writes for a map.")
async def stop_dual_write_map(info: strawberry.Info, name: str) -> DualWriteMap:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    return DualWriteMap.of(await context.control.dualwrite.stop(name))


@strawberry.mutation(
    name="pauseDualWriteMap",
    description="Pause a running map: writes still land on their own side, and wait in the "
    "map's queue (bounded only by disk) until it resumes.",
)
async def pause_dual_write_map(info: strawberry.Info, name: str) -> DualWriteMap:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    return DualWriteMap.of(await context.control.dualwrite.pause(name))


@strawberry.mutation(
    name="resumeDualWriteMap",
    description="Replay what the paused map queued, in order; it runs live again once the "
    "queue is empty. Rows the other side refuses go to the error log.",
)
async def resume_dual_write_map(info: strawberry.Info, name: str) -> DualWriteMap:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    return DualWriteMap.of(await context.control.dualwrite.resume(name))


@strawberry.mutation(
    name="retryDualWriteErrors",
    description="Copy again the rows in the map's error log (all, or those `ids` names); "
    "those that fail again stay there with their new message.",
)
async def retry_dual_write_errors(
    info: strawberry.Info, name: str, ids: list[strawberry.ID] | None = None
) -> DualWriteMap:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    services = context.control
    view = await services.dualwrite.map(name)
    chosen = None
    if ids is not None:
        try:
            chosen = [int(i) for i in ids]
        except ValueError:
            raise BadUserInput("ids are the id fields of the map's errors") from None
    environment = services.dualwrite.environment
    await services.initial_sync.retry(environment, view.definition.name, chosen)
    return DualWriteMap.of(await services.dualwrite.map(name))


@strawberry.mutation(
    name="saveDualWriteMap",
    description="Create a map, or change one that is not running, from its definition (the "
    "form the dual-write application installs: name, fno_entity, dataverse_table, "
    "company_specific, key, fields with fno/dataverse/direction/default/value_map, filters, "
    "depends_on). Refused with MAP_INVALID listing every problem.",
)
async def save_dual_write_map(info: strawberry.Info, definition: JSON) -> DualWriteMap:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    if not isinstance(definition, dict):
        raise BadUserInput("definition is a JSON object")
    return DualWriteMap.of(await context.control.dualwrite.save(definition))


@strawberry.mutation(name="deleteDualWriteMap", description="Remove a map that is not running.")
async def delete_dual_write_map(info: strawberry.Info, name: str) -> bool:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    await context.control.dualwrite.delete(name)
    return True


@strawberry.subscription(
    name="dualWriteMaps",
    description="The maps now, then again whenever a state, a queue, an error count or an "
    "initial sync's progress changes.",
)
async def watch_dual_write_maps(info: strawberry.Info) -> AsyncGenerator[list[DualWriteMap], None]:
    context: RequestContext = info.context
    context.require(Role.READER)
    async for views in context.control.dualwrite.watch():
        yield [DualWriteMap.of(v) for v in views]


@strawberry.mutation(
    name="setDualWriteAlert",
    description="When the map counts `errors` errors (refused writes and logged rows) within "
    "the window: NOTIFY (activity log and gateway log), PAUSE or STOP it. One rule per action.",
)
async def set_dual_write_alert(
    info: strawberry.Info,
    name: str,
    action: AlertAction,
    errors: int,
    within_minutes: Annotated[int, strawberry.argument(name="withinMinutes")],
) -> DualWriteMap:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    view = await context.control.dualwrite.set_alert(name, action, errors, within_minutes)
    return DualWriteMap.of(view)


@strawberry.mutation(name="removeDualWriteAlert", description="Drop a map's alert rule.")
async def remove_dual_write_alert(
    info: strawberry.Info, name: str, action: AlertAction
) -> DualWriteMap:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    return DualWriteMap.of(await context.control.dualwrite.remove_alert(name, action))


QUERIES = [dual_write_maps]
SUBSCRIPTIONS = [watch_dual_write_maps]
MUTATIONS = [
    run_dual_write_map,
    stop_dual_write_map,
    retry_dual_write_errors,
    pause_dual_write_map,
    resume_dual_write_map,
    save_dual_write_map,
    set_dual_write_alert,
    remove_dual_write_alert,
    delete_dual_write_map,
]
