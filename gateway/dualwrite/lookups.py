"""Lookups: a mapped field that names a Dataverse row. F&O holds the row's business
key (an account number), Dataverse its row id; carrying the value across swaps one
for the other by reading the lookup table, or refuses the row when it names nothing.
A polymorphic lookup names a row of one of several tables: each is tried in order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.kernel.catalog import EntityMetadata
from gateway.kernel.dualwrite import DualWriteMap, Side
from gateway.kernel.errors import BadUserInput


def needs_lookups(m: DualWriteMap, target: Side) -> bool:
    return any(f.lookups and f.direction.reaches(target) for f in m.fields)


async def resolve(
    m: DualWriteMap,
    target: Side,
    values: dict[str, Any],
    company: str | None,
    unit: Any,
    tables: Mapping[str, EntityMetadata],
    cache: dict[tuple[Any, ...], Any] | None = None,
) -> None:
    """Replace each looked-up value in `values` (in place) by what it names on the
    target side. `unit` reads the Dataverse store; `company` is the row's legal entity."""
    for mapping in m.fields:
        name = mapping.name_on(target)
        if not mapping.lookups or not name or values.get(name) is None:
            continue
        raw = values[name]
        asked: list[str] = []
        for lookup in mapping.lookups:
            if target is Side.DATAVERSE:
                where = {lookup.by: raw}
                if lookup.company and company:
                    where[lookup.company] = company.upper()
                wanted = lookup.returns
            else:
                where, wanted = {lookup.returns: raw}, lookup.by
            remembered = (lookup.table, *sorted(where.items()))
            if cache is not None and remembered in cache:
                found = cache[remembered]
            else:
                row = await unit.find(tables[lookup.table], where)
                found = row[wanted] if row is not None else None
                if cache is not None:
                    cache[remembered] = found
            if found is not None:
                values[name] = found
                break
            asked.append(
                f"{lookup.table} with " + ", ".join(f"{k} {v!r}" for k, v in where.items())
            )
        else:
            raise BadUserInput(f"{name}: there is no " + " and no ".join(asked))
