"""OData bulk-write benchmark: rows a second into a Dataverse-shaped Web API, as an
initial sync writes them.

    .venv/bin/python bench/odata_write_bench.py --rows 2000

Each round upserts the same number of new accounts into the Dataverse-shaped OData
peer (odatapy, tests/peers): once as the gateway's bulk upsert does it (`$batch`es of
100 requests, each answered on its own), once one request per row, eight in flight
(what a client without `$batch` does). The two alternate, in one run. The service's
own time (odatapy is slow) is in both: what differs is the round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test peer, in tests/

from datasources.odata.endpoint import Endpoint
from datasources.odata.source import ODataSource
from gateway.kernel.catalog import EntityMetadata
from gateway.kernel.change import Change, ChangeKind
from tests.conftest import PEER_SECRET, odata_url
from tests.peers.odata.peer import start as start_peer

KEY = ["msdyn_company", "accountnumber"]


def accounts(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {"msdyn_company": "USMF", "accountnumber": f"{prefix}-{i}", "name": f"Account {i}"}
        for i in range(count)
    ]


async def batched(store: ODataSource, account: EntityMetadata, rows: list[dict[str, Any]]) -> None:
    async with store.unit() as unit:
        refused = await unit.upsert_many(
            account, {}, KEY, rows, lambda: {"accountid": str(uuid.uuid4())}
        )
    assert not refused, refused


async def one_by_one(
    store: ODataSource, account: EntityMetadata, rows: list[dict[str, Any]]
) -> None:
    slots = asyncio.Semaphore(8)

    async def create(row: dict[str, Any]) -> None:
        key = {"accountid": str(uuid.uuid4())}
        async with slots, store.unit() as unit:
            await unit.apply(account, {}, Change("account", ChangeKind.CREATE, key, row), row)

    await asyncio.gather(*(create(row) for row in rows))


async def run(url: str, count: int, rounds: int) -> None:
    store = ODataSource(Endpoint.parse(url))
    account = (await store.service()).entity("account")
    rates: dict[str, list[float]] = {"$batch (100 a request)": [], "one request a row": []}
    try:
        for round_ in range(rounds):
            for (label, found), write in zip(rates.items(), (batched, one_by_one), strict=True):
                rows = accounts(f"{round_}{label[:3]}", count)
                started = time.perf_counter()
                await write(store, account, rows)
                found.append(count / (time.perf_counter() - started))
    finally:
        await store.close()
    for label, found in rates.items():
        best = max(found)
        print(f"{label:28} {best:8.0f} rows/s (best of {rounds})")
    print(f"ratio {max(rates['$batch (100 a request)']) / max(rates['one request a row']):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault(PEER_SECRET, "s3cret")
    with start_peer(None, service="dataverse") as peer:
        asyncio.run(run(odata_url(peer, "standard"), args.rows, args.rounds))


if __name__ == "__main__":
    main()
