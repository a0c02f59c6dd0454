"""The integration's status: its control-store rows, the snapshot a portal shows, and
the append-only status stream a listener replays from a cursor."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Boolean, Column, Integer, String, Table, Text, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from datasources.sql.tables import UtcDateTime
from gateway.control import control_metadata
from gateway.events.log import raise_control_event
from gateway.kernel.addins import (
    DUAL_WRITE_APPLICATION,
    InstallAction,
    InstallState,
    install_actions,
)
from gateway.kernel.events import BY_ID
from gateway.kernel.json import dumps, loads, plain
from gateway.kernel.setup import (
    Action,
    SetupState,
    Stage,
    Template,
    available_actions,
    progress,
    status_message,
)

integration = Table(
    "integration",
    control_metadata,
    Column("environment", String(100), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("stage", String(40), nullable=False),
    Column("template", String(40), nullable=False),
    Column("dataverse_environment", String(100), nullable=False),
    Column("existing", Boolean, nullable=False),
    Column("error", Text),
    Column("link_id", String(36), nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime),
)
add_in_installation = Table(
    "add_in_installation",
    control_metadata,
    Column("environment", String(100), primary_key=True),
    Column("add_in", String(100), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("parameters", Text, nullable=False),
    Column("error", Text),
    Column("requested_by", String(200), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("installed_at", UtcDateTime),
)
integration_event = Table(
    "integration_event",
    control_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("environment", String(100), nullable=False, index=True),
    Column("at", UtcDateTime, nullable=False),
    Column("payload", Text, nullable=False),
)


@dataclass(frozen=True)
class AddInInstallation:
    add_in: str
    state: InstallState
    parameters: dict[str, Any]
    error: str | None
    updated_at: dt.datetime
    installed_at: dt.datetime | None
    available_actions: list[InstallAction]


@dataclass(frozen=True)
class IntegrationStatus:
    environment: str
    state: SetupState
    stage: Stage | None
    progress: int
    message: str
    error: str | None
    template: Template | None
    dataverse_environment: str | None
    started_at: dt.datetime | None
    updated_at: dt.datetime | None
    completed_at: dt.datetime | None
    available_actions: list[Action]
    add_ins: list[AddInInstallation] = field(default_factory=list)
    cursor: str = "0"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def installations(conn: AsyncConnection, environment: str) -> list[AddInInstallation]:
    rows = await conn.execute(
        select(add_in_installation)
        .where(add_in_installation.c.environment == environment)
        .order_by(add_in_installation.c.add_in)
    )
    return [
        AddInInstallation(
            add_in=r.add_in,
            state=InstallState(r.state),
            parameters=loads(r.parameters),
            error=r.error,
            updated_at=r.updated_at,
            installed_at=r.installed_at,
            available_actions=install_actions(InstallState(r.state)),
        )
        for r in rows
    ]


async def snapshot(conn: AsyncConnection, environment: str) -> IntegrationStatus:
    """The status as of this moment, inside the caller's transaction."""
    row = (
        await conn.execute(select(integration).where(integration.c.environment == environment))
    ).first()
    add_ins = await installations(conn, environment)
    dual_write = any(
        a.add_in == DUAL_WRITE_APPLICATION.name and a.state is InstallState.INSTALLED
        for a in add_ins
    )
    if row is None:
        state = SetupState.NOT_LINKED
        return IntegrationStatus(
            environment,
            state,
            None,
            0,
            status_message(state, Stage.VALIDATE, None),
            None,
            None,
            None,
            None,
            None,
            None,
            available_actions(state, False),
            add_ins,
        )
    state, stage = SetupState(row.state), Stage(row.stage)
    linked = state is not SetupState.NOT_LINKED
    return IntegrationStatus(
        environment=environment,
        state=state,
        stage=stage if linked else None,
        progress=100 if state is SetupState.COMPLETED else progress(stage) if linked else 0,
        message=status_message(state, stage, row.error),
        error=row.error,
        template=Template(row.template) if linked else None,
        dataverse_environment=row.dataverse_environment if linked else None,
        started_at=row.started_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
        available_actions=available_actions(state, dual_write),
        add_ins=add_ins,
    )


async def record(conn: AsyncConnection, environment: str) -> None:
    """Append the status as it now stands to the stream (in the change's transaction);
    a new stage or state also raises IntegrationSetupStageChanged."""
    status = await snapshot(conn, environment)
    previous = await conn.scalar(
        select(integration_event.c.payload)
        .where(integration_event.c.environment == environment)
        .order_by(integration_event.c.seq.desc())
        .limit(1)
    )
    was = loads(previous) if previous else {}
    stage = status.stage.value if status.stage else None
    if (was.get("stage"), was.get("state")) != (stage, status.state.value):
        await raise_control_event(
            conn,
            BY_ID["IntegrationSetupStageChangedBusinessEvent"],
            "",
            {"Environment": environment, "Stage": stage or "", "State": status.state.value},
        )
    await conn.execute(
        insert(integration_event).values(
            environment=environment, at=now(), payload=dumps(plain(asdict(status)))
        )
    )


async def history(
    conn: AsyncConnection, environment: str, after: int, limit: int = 100
) -> list[IntegrationStatus]:
    rows = await conn.execute(
        select(integration_event.c.seq, integration_event.c.payload)
        .where(integration_event.c.environment == environment, integration_event.c.seq > after)
        .order_by(integration_event.c.seq)
        .limit(limit)
    )
    return [_status(loads(payload), seq) for seq, payload in rows]


async def latest_cursor(conn: AsyncConnection, environment: str) -> int:
    from sqlalchemy import func

    found = await conn.scalar(
        select(func.max(integration_event.c.seq)).where(
            integration_event.c.environment == environment
        )
    )
    return int(found or 0)


def _stamp(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _status(data: dict[str, Any], seq: int) -> IntegrationStatus:
    return IntegrationStatus(
        environment=data["environment"],
        state=SetupState(data["state"]),
        stage=Stage(data["stage"]) if data["stage"] else None,
        progress=data["progress"],
        message=data["message"],
        error=data["error"],
        template=Template(data["template"]) if data["template"] else None,
        dataverse_environment=data["dataverse_environment"],
        started_at=_stamp(data["started_at"]),
        updated_at=_stamp(data["updated_at"]),
        completed_at=_stamp(data["completed_at"]),
        available_actions=[Action(a) for a in data["available_actions"]],
        add_ins=[
            AddInInstallation(
                add_in=a["add_in"],
                state=InstallState(a["state"]),
                parameters=a["parameters"],
                error=a["error"],
                updated_at=dt.datetime.fromisoformat(a["updated_at"]),
                installed_at=_stamp(a["installed_at"]),
                available_actions=[InstallAction(x) for x in a["available_actions"]],
            )
            for a in data["add_ins"]
        ],
        cursor=str(seq),
    )
