"""The write pipeline: every change to F&O data through the gateway passes here.

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
    def __init__(self, fno: DataSource) -> None:
        self._fno = fno

    async def apply(
        self, entity: EntityMetadata, targets: Mapping[str, EntityMetadata], change: Change
    ) -> tuple[Row | None, Row | None]:
        """(before, after) of the row; nothing is written unless all of it is."""
        values = validate(entity, change)
        return await self._fno.write(entity, targets, change, values)
