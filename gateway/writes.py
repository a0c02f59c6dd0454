"""The write pipeline: every change through the gateway (to a virtual entity or a
Dataverse table) passes here.

validate → apply to the origin store → carry it through each running dual-write map
to the other store → commit the other store, then the origin. When anything fails
(a refusal, a broken constraint, an unreachable store, the time limit) both
transactions roll back: the mutation returns with both stores changed or neither.
What sync applied on the other side is written directly, so it never echoes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from gateway.dualwrite import lookups
from gateway.dualwrite.initial_sync import read_by_keys, row_ids
from gateway.dualwrite.lookups import needs_lookups
from gateway.dualwrite.service import DualWriteService
from gateway.events.raising import outbox_rows
from gateway.kernel.catalog import EntityMetadata
from gateway.kernel.change import Change, ChangeKind, validate, version_field
from gateway.kernel.dualwrite import Carrier, DualWriteMap, Side, identity, key_on, passes
from gateway.kernel.errors import GatewayError, NotFound, UpstreamFailed

log = logging.getLogger("gateway.writes")
Row = dict[str, Any]


class WritePipeline:
    def __init__(self, dualwrite: DualWriteService, sync_timeout: float = 120.0) -> None:
        self._dualwrite = dualwrite
        self._timeout = sync_timeout
        self._raised: Callable[[], None] = lambda: None

    def use_relay(self, wake: Callable[[], None]) -> None:
        """Who to tell that a committed write left events in an outbox."""
        self._raised = wake

    async def apply(
        self,
        side: Side,
        entity: EntityMetadata,
        targets: Mapping[str, EntityMetadata],
        change: Change,
    ) -> tuple[Row | None, Row | None]:
        """(before, after) of the row on `side`; nothing is written unless all of it is."""
        values = validate(entity, change)
        store = self._dualwrite.store(side)
        maps = self._dualwrite.running(side, entity.name)
        paused = self._dualwrite.queued(side, entity.name)
        if paused:
            # for a paused map the write lands alone and its key waits in the map's queue
            named = await self._identity(side, entity, change, paused)
            await self._dualwrite.enqueue(paused, side, [named])
        if not maps:
            async with store.unit() as here:
                before, after = await here.apply(entity, targets, change, values)
                await self._raise(side, here, entity, change, before, after)
            self._raised()
            return before, after
        other = side.other
        other_entities = await self._dualwrite.entities(other)
        async with store.unit() as here:
            before, after = await here.apply(entity, targets, change, values)
            await self._raise(side, here, entity, change, before, after)
            try:
                async with (
                    asyncio.timeout(self._timeout),
                    self._dualwrite.store(other).unit() as there,
                ):
                    lookups = Lookups(
                        there if other is Side.DATAVERSE else here,
                        await self._dualwrite.entities(Side.DATAVERSE),
                    )
                    for m in maps:
                        await self._carry(
                            m, side, entity, before, after, change, there, other_entities, lookups
                        )
            except TimeoutError:
                message = (
                    f"{other.label} did not answer within {self._timeout:g} s; "
                    "nothing was written on either side"
                )
                await self._note_refusal(maps, side, entity, change, message)
                raise UpstreamFailed(message) from None
            except GatewayError as exc:
                exc.message = f"{other.label} refused the change: {exc.message}"
                exc.args = (exc.message,)
                await self._note_refusal(maps, side, entity, change, exc.message)
                raise
        self._raised()
        return before, after

    async def _raise(
        self,
        side: Side,
        unit: Any,
        entity: EntityMetadata,
        change: Change,
        before: Row | None,
        after: Row | None,
    ) -> None:
        """The change's events, into the outbox of the store it was made in, in its
        transaction: they exist if and only if it commits. The catalog is F&O's:
        Dataverse tables raise none."""
        if side is Side.FNO:
            rows = outbox_rows(entity, change.kind, before, after, change.actor)
            await unit.raise_events(rows)

    async def _identity(
        self, side: Side, entity: EntityMetadata, change: Change, maps: list[DualWriteMap]
    ) -> dict[str, Any]:
        """What names the row for a paused map: its key, and for a delete also the
        map's key fields, which the other side needs once the row is gone."""
        key = dict(change.key)
        if change.kind is not ChangeKind.DELETE:
            return key
        present, _ = await read_by_keys(self._dualwrite.store(side), entity, [key])
        for row in present:
            key.update(identity(maps, side, row))
        return key

    async def _note_refusal(
        self,
        maps: list[DualWriteMap],
        side: Side,
        entity: EntityMetadata,
        change: Change,
        message: str,
    ) -> None:
        """The activity log keeps what the caller was told (the write itself is undone)."""
        try:
            await self._dualwrite.note(
                [m.name for m in maps],
                "REFUSED",
                f"a {change.kind.value} of {entity.name} {dict(change.key)} on "
                f"{side.label} was undone: {message}",
            )
        except Exception:
            log.exception("could not record a refused dual-write change")

    async def _carry(
        self,
        m: DualWriteMap,
        side: Side,
        entity: EntityMetadata,
        before: Row | None,
        after: Row | None,
        change: Change,
        there: Any,
        entities: Mapping[str, EntityMetadata],
        lookups: Lookups,
    ) -> None:
        target = side.other
        target_entity = entities.get(m.entity_on(target))
        if target_entity is None:
            raise UpstreamFailed(f"{m.entity_on(target)} is not published any more")
        row = after if after is not None else before
        assert row is not None
        if not passes(m, side, entity, row):
            return
        carrier = Carrier(m, side, entity, target_entity)
        company = row.get(entity.company_field) if entity.company_field else None

        def derived_change(kind: ChangeKind, key: Row, values: Row | None = None) -> Change:
            return Change(
                target_entity.name, kind, key, values or {}, actor=change.actor, origin="dual-write"
            )

        if change.kind is ChangeKind.UPDATE:
            # only what changed travels (and the key that finds the row): the lookups
            # of unchanged fields are not read again
            origins = {fno if side is Side.FNO else dv for fno, dv in m.key}
            partial = carrier.carry(row, set(change.values) | origins)
            await lookups.resolve(m, target, partial, company)
            key = key_on(m, target, partial)
            values = {k: v for k, v in partial.items() if k not in key}
            if not values:
                return  # no mapped field changed
            derived = derived_change(ChangeKind.UPDATE, key, values)
            try:
                if target is Side.DATAVERSE:  # raises no events: nothing to read
                    await there.apply(
                        target_entity, entities, derived, validate(target_entity, derived), False
                    )
                elif there.plain_update(target_entity, entities, derived):
                    # one statement: the row as it was is the one updated, with the
                    # changed fields as the map carried them from before the change
                    after = await there.update(target_entity, key, validate(target_entity, derived))
                    old = carrier.carry(before or {}, set(change.values) | origins)
                    await lookups.resolve(m, target, old, company)
                    was = {**after, **{k: old[k] for k in values if k in old}}
                    version = version_field(target_entity)
                    if version is not None and after.get(version) is not None:
                        was[version] = after[version] - 1
                    await self._raise(target, there, target_entity, derived, was, after)
                else:
                    await self._apply_there(target, there, target_entity, entities, derived)
                return
            except NotFound:
                pass  # not on the other side yet: it is created there
        full = carrier.carry(row)
        await lookups.resolve(m, target, full, company)
        key = key_on(m, target, full)
        if change.kind is ChangeKind.DELETE:
            derived = derived_change(ChangeKind.DELETE, key)
            with suppress(NotFound):  # not there: nothing to delete
                await self._apply_there(target, there, target_entity, entities, derived)
            return
        values = {k: v for k, v in full.items() if k not in key}
        if await there.find(target_entity, key) is not None:
            derived = derived_change(ChangeKind.UPDATE, key, values)
        else:
            key = {**key, **row_ids(target_entity, key)}
            derived = derived_change(ChangeKind.CREATE, key, values)
        await self._apply_there(target, there, target_entity, entities, derived)

    async def _apply_there(
        self,
        side: Side,
        there: Any,
        entity: EntityMetadata,
        entities: Mapping[str, EntityMetadata],
        derived: Change,
    ) -> None:
        """Apply what a map derived on the other side, raising that side's events in
        its transaction, as a write made there would."""
        values = validate(entity, derived) if derived.kind is not ChangeKind.DELETE else {}
        before, after = await there.apply(entity, entities, derived, values, side is Side.FNO)
        await self._raise(side, there, entity, derived, before, after)


class Lookups:
    """Resolves a write's lookups in the Dataverse transaction it runs in."""

    def __init__(self, unit: Any, tables: Mapping[str, EntityMetadata]) -> None:
        self._unit = unit
        self._tables = tables

    async def resolve(
        self, m: DualWriteMap, target: Side, values: dict[str, Any], company: Any
    ) -> None:
        if needs_lookups(m, target):
            await lookups.resolve(m, target, values, company, self._unit, self._tables)
