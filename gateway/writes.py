"""The write pipeline: every change through the gateway (to a virtual entity or a
Dataverse table) passes here.

validate → apply to the origin store (one transaction) → answer. Dual-write maps and
the business-event outbox join this pipeline inside that transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datasources.base import DataSource
from gateway.kernel.catalog import EntityMetadata
from gateway.kernel.change import Change, validate

Row = dict[str, Any]


class WritePipeline:
    async def apply(
        self,
        store: DataSource,
        entity: EntityMetadata,
        targets: Mapping[str, EntityMetadata],
        change: Change,
    ) -> tuple[Row | None, Row | None]:
        """(before, after) of the row in `store`; nothing is written unless all of it is."""
        values = validate(entity, change)
        return await store.write(entity, targets, change, values)
