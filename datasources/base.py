"""The contract every datasource fulfils, whatever kind of store is behind it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from gateway.kernel.catalog import EntityMetadata
from gateway.kernel.change import Change, TrackedChange
from gateway.kernel.errors import UpstreamFailed
from gateway.kernel.plan import Connection, QueryPlan
from gateway.kernel.shape import Shape


class Busy(Exception):
    """Another writer holds the rows (see `DataSource.hold`)."""


class Untracked(UpstreamFailed):
    """The store keeps no log of what other clients write to an entity, and never will
    (see `DataSource.track`)."""


class Reader(Protocol):
    async def fetch(self, plan: QueryPlan) -> Connection:
        """Run a read plan."""
        ...


class DataSource(Protocol):
    """Reads an F&O (or Dataverse) store through, without copying.

    `fetch` runs a plan and its child plans: at most one statement per level of the
    plan, whatever the number of rows, with filtering, ordering and paging done in
    the store. Rows are dicts keyed by entity field name; a child plan's results
    are attached to each parent row under `child_slot(child.key)`.
    """

    async def published_entities(self) -> list[EntityMetadata]:
        """Every entity the store publishes, as it is defined now."""
        ...

    async def companies(self) -> list[str]:
        """The legal entities (dataAreaId) the store knows."""
        ...

    async def fetch(self, plan: QueryPlan) -> Connection:
        """Run a read plan."""
        ...

    def prepare_json(self, reads: Sequence[tuple[QueryPlan, Shape]]) -> object | None:
        """Prepare to answer reads with response JSON built by the store; None if it cannot.

        What it returns may be kept and run again for the same reads.
        """
        ...

    async def fetch_json(
        self, prepared: object, arguments: Mapping[str, Any]
    ) -> list[str | None] | None:
        """Each read's response JSON (None for a missing row), with `arguments` as the
        values of the plan's `Slot`s; None: take the generic path."""
        ...

    async def write(
        self,
        entity: EntityMetadata,
        targets: Mapping[str, EntityMetadata],
        change: Change,
        values: Mapping[str, Any],
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Apply a validated change atomically; (before, after) by field name. `targets`
        are the entities its to-one relations may point at."""
        ...

    def unit(self) -> AbstractAsyncContextManager[Any]:
        """A transaction to apply several changes in (`apply`, `find`), all or none."""
        ...

    def hold(self) -> AbstractAsyncContextManager[Reader]:
        """A transaction whose reads (plans without pages or relations) keep the rows
        they read from other writers until the block ends. Raises `Busy` at once,
        never waiting, when another writer holds them. It writes nothing."""
        ...

    def watch_events(self, wake: Callable[[], None]) -> None:
        """From now on, call `wake` when any writer commits events to the outbox, where
        the store can tell (a relay looks periodically anyway)."""
        ...

    async def take_events(self, limit: int) -> list[dict[str, Any]]:
        """The oldest events waiting in the store's outbox."""
        ...

    async def forget_events(self, ids: Sequence[int]) -> None:
        """Drop events the event log holds now."""
        ...

    async def track(self, entities: Sequence[EntityMetadata]) -> None:
        """Log, from now on, what other clients write to these entities."""
        ...

    async def changes(self, entities: Sequence[EntityMetadata], limit: int) -> list[TrackedChange]:
        """The oldest logged changes to these entities; those of others are dropped."""
        ...

    async def forget(self, ids: Sequence[int], events: Sequence[Mapping[str, Any]] = ()) -> None:
        """Drop handled changes from the log, and in the same transaction put the events
        they raised into the outbox."""
        ...

    async def close(self) -> None: ...
