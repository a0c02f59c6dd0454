"""Dual-write maps in GraphQL: list them with their state and problems; run and stop
them (admin). Running carries every write made through the gateway to the other
side from then on; rows that exist already are not copied (no initial sync yet)."""

from __future__ import annotations

import datetime as dt

import strawberry

from gateway.auth import Role
from gateway.dualwrite.service import MapView
from gateway.kernel.dualwrite import Direction, MapAction, MapState, Master
from schema.context import RequestContext

strawberry.enum(Direction, name="MappingDirection")
strawberry.enum(MapState, name="DualWriteMapState")
strawberry.enum(MapAction, name="DualWriteMapAction")
strawberry.enum(Master, name="ConflictMaster", description="Which side wins a conflict.")


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
        )


@strawberry.field(name="dualWriteMaps", description="The linked environment's maps.")
async def dual_write_maps(info: strawberry.Info) -> list[DualWriteMap]:
    context: RequestContext = info.context
    context.require(Role.READER)
    return [DualWriteMap.of(v) for v in await context.control.dualwrite.maps()]


@strawberry.mutation(
    name="runDualWriteMap",
    description="Run a map and the maps it depends on. From now on every write through "
    "the gateway to either side is carried to the other, both or neither.",
)
async def run_dual_write_map(
    info: strawberry.Info, name: str, master: Master = Master.DATAVERSE
) -> list[DualWriteMap]:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    return [DualWriteMap.of(v) for v in await context.control.dualwrite.run(name, master)]


@strawberry.mutation(name="stopDualWriteMap", description="Stop carrying writes for a map.")
async def stop_dual_write_map(info: strawberry.Info, name: str) -> DualWriteMap:
    context: RequestContext = info.context
    context.require(Role.ADMIN)
    return DualWriteMap.of(await context.control.dualwrite.stop(name))


QUERIES = [dual_write_maps]
MUTATIONS = [run_dual_write_map, stop_dual_write_map]
