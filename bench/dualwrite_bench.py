"""Dual-write benchmark, on SQLite and on PostgreSQL:

  (a) writes per second through a running map (both stores, one unit) against the same
      writes with the map stopped (the F&O store alone): the ratio (goal: at most 2x);
  (b) initial sync of every customer (scale 100: 100,000) into Dataverse accounts, in
      rows per second (goal: at least 20,000 on PostgreSQL), beside Microsoft's
      guidance for its initial sync (about 100 rows a minute per legal entity);
  (c) how long a row another client updates straight in the F&O store takes to reach
      Dataverse through change tracking (goal: within a second).

    .venv/bin/python bench/dualwrite_bench.py --scale 100 --writes 2000

Each backend gets fresh stores (PostgreSQL databases on --pg, dropped at the end;
SQLite files in a temporary folder). The gateway runs in this process, with its own
job runner, exactly as `fno-gateway serve` would run the same jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datasources.fno_demo.generate import build_demo_store
from datasources.sql.engine import create_engine
from gateway.kernel.change import Change, ChangeKind
from gateway.kernel.dualwrite import MapState, Master, Side
from gateway.kernel.setup import Template
from gateway.runtime import Runtime
from gateway.settings import Settings

ADMIN = "admin@contoso.com"
ENVIRONMENT = "contoso-sandbox"
CUSTOMERS = "Customers V3 (accounts)"
MICROSOFT_ROWS_PER_MINUTE_PER_COMPANY = 100


async def wait(check: Any, limit: float = 3600) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("the job did not finish")
        await asyncio.sleep(0.02)


async def measure(backend: str, pg: str, scale: float, writes: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"fno-dw-{backend}-"))
    created: list[str] = []

    async def store(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{folder / name}.db"
        database = f"fno_dw_bench_{name}_{uuid.uuid4().hex[:6]}"
        engine = create_engine(pg, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
        await engine.dispose()
        created.append(database)
        return make_url(pg).set(database=database).render_as_string(hide_password=False)

    fno, control = await store("fno"), await store("control")
    engine = create_engine(fno)
    started = time.perf_counter()
    await build_demo_store(engine, scale)
    await engine.dispose()
    await settle(fno)
    print(f"{backend}: demo store at scale {scale} in {time.perf_counter() - started:.0f} s")
    settings = Settings(
        data_dir=folder,
        fno_url=fno,
        control_url=control,
        dataverse_location=str(folder / "dataverse") if backend == "sqlite" else pg,
        jwt_secret="bench-" + "x" * 40,
        poll_seconds=0.05,
        log_level="warning",
    )
    runtime = await Runtime.open(settings)
    gc.freeze()  # as `fno-gateway serve` does once started
    services = runtime.services
    try:
        integrations, dualwrite = services.integrations, services.dualwrite
        await integrations.setup(ADMIN, ENVIRONMENT, True, Template.STANDARD_WITH_DUAL_WRITE)

        async def linked() -> bool:
            return (await integrations.status(ENVIRONMENT)).state.value == "COMPLETED"

        await wait(linked)
        await services.add_ins.install_dual_write_application(ADMIN, ENVIRONMENT)

        async def installed() -> bool:
            found = await services.add_ins.installations(ENVIRONMENT)
            return bool(found) and found[0].state.value == "INSTALLED"

        await wait(installed)

        async def state(name: str) -> MapState:
            found = await dualwrite.state(name)
            if found is MapState.ERROR:
                reason = (await dualwrite.map(name)).activity[0].message
                raise RuntimeError(f"{name} is in error: {reason}")
            return found

        # the maps customers depend on first, then customers alone: timed
        await dualwrite.run("Customer groups (msdyn_customergroups)", Master.FNO, True)

        async def groups_running() -> bool:
            return await state("Customer groups (msdyn_customergroups)") is MapState.RUNNING

        await wait(groups_running)
        started = time.perf_counter()
        await dualwrite.run(CUSTOMERS, Master.FNO, True)

        async def customers_running() -> bool:
            return await state(CUSTOMERS) is MapState.RUNNING

        await wait(customers_running)
        seconds = time.perf_counter() - started
        view = await dualwrite.map(CUSTOMERS)
        copied = sum(p.copied for p in view.progress)

        # writes: the same credit-limit updates with the map running, then stopped
        entities = {e.name: e for e in await runtime.fno.published_entities()}
        customer = entities["CustomerV3"]
        page = await runtime.fno.fetch(_accounts_plan(customer, writes))
        keys = [
            {"dataAreaId": r["dataAreaId"], "CustomerAccount": r["CustomerAccount"]}
            for r in page.rows
        ]

        async def timed() -> float:
            begun = time.perf_counter()
            for i, key in enumerate(keys):
                change = Change(
                    "CustomerV3", ChangeKind.UPDATE, key, {"CreditLimit": Decimal(1000 + i)}
                )
                await services.writes.apply(Side.FNO, customer, entities, change)
            return len(keys) / (time.perf_counter() - begun)

        running = await timed()
        lags = await direct_lags(fno, runtime, keys[:50])
        await dualwrite.stop(CUSTOMERS)
        stopped = await timed()
        return {
            "rows": copied,
            "seconds": seconds,
            "rows_per_s": copied / seconds,
            "companies": len(view.progress),
            "writes_running": running,
            "writes_stopped": stopped,
            "lag_p50": statistics.median(lags),
            "lag_p99": statistics.quantiles(lags, n=100)[98],
        }
    finally:
        await runtime.close()
        shutil.rmtree(folder, ignore_errors=True)
        if created:
            engine = create_engine(pg, isolation_level="AUTOCOMMIT")
            async with engine.connect() as conn:
                for name in [*created, *await _dataverse_databases(conn)]:
                    await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await engine.dispose()


async def settle(url: str) -> None:
    """Let the store finish digesting the bulk load (vacuum, statistics, checkpoint) so
    the figures measure a store at rest, not autovacuum catching up."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                await conn.exec_driver_sql("VACUUM ANALYZE")
                await conn.exec_driver_sql("CHECKPOINT")
            else:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await engine.dispose()


async def direct_lags(fno: str, runtime: Runtime, keys: list[dict[str, Any]]) -> list[float]:
    """(c) Seconds from an UPDATE another client commits in the F&O store until the
    Dataverse account shows it, one at a time."""
    writer = create_engine(fno)
    assert runtime.linked.source is not None
    dataverse = runtime.linked.source.engine
    lags: list[float] = []
    try:
        for i, key in enumerate(keys):
            limit = 50_000 + i
            async with writer.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE custcustomerv3entity SET creditlimit = :v "
                        "WHERE dataareaid = :c AND customeraccount = :a"
                    ),
                    {"v": limit, "c": key["dataAreaId"], "a": key["CustomerAccount"]},
                )
            begun = time.perf_counter()
            while True:
                async with dataverse.connect() as conn:
                    found = await conn.scalar(
                        text(
                            "SELECT creditlimit FROM account WHERE accountnumber = :a "
                            "AND msdyn_company = :c"
                        ),
                        {"a": key["CustomerAccount"], "c": key["dataAreaId"].upper()},
                    )
                if found is not None and Decimal(found) == limit:
                    break
                if time.perf_counter() - begun > 30:
                    raise TimeoutError("a direct write did not reach Dataverse in 30 s")
                await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - begun)
    finally:
        await writer.dispose()
    return lags


async def _dataverse_databases(conn: Any) -> list[str]:
    rows = await conn.exec_driver_sql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'dataverse_contoso_sandbox%'"
    )
    return [r[0] for r in rows]


def _accounts_plan(customer: Any, count: int) -> Any:
    from gateway.kernel.plan import Compare, Op, OrderTerm, PageRequest, QueryPlan

    return QueryPlan(
        entity=customer,
        columns=("dataAreaId", "CustomerAccount"),
        order=(OrderTerm("dataAreaId"), OrderTerm("CustomerAccount")),
        where=Compare("PartyType", Op.EQ, 2),
        page=PageRequest(first=count),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=100)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    results = {
        backend: asyncio.run(measure(backend, args.pg, args.scale, args.writes))
        for backend in args.backends.split(",")
    }
    print()
    print("(b) initial sync of customers → accounts")
    print(f"{'backend':<12}{'rows':>10}{'seconds':>10}{'rows/s':>10}{'Microsoft rows/s':>18}")
    for backend, r in results.items():
        microsoft = MICROSOFT_ROWS_PER_MINUTE_PER_COMPANY * r["companies"] / 60
        print(
            f"{backend:<12}{r['rows']:>10,.0f}{r['seconds']:>10.1f}{r['rows_per_s']:>10,.0f}"
            f"{microsoft:>18,.1f}"
        )
    print()
    print(f"(a) {args.writes:,} credit-limit updates through the write pipeline, one at a time")
    print(f"{'backend':<12}{'map running/s':>15}{'map stopped/s':>15}{'cost x':>9}")
    for backend, r in results.items():
        ratio = r["writes_stopped"] / r["writes_running"]
        print(
            f"{backend:<12}{r['writes_running']:>15,.0f}{r['writes_stopped']:>15,.0f}{ratio:>9.2f}"
        )
    print()
    print("(c) an UPDATE made straight in the F&O store until Dataverse shows it (50 rows)")
    print(f"{'backend':<12}{'p50 ms':>10}{'p99 ms':>10}{'goal ms':>10}")
    for backend, r in results.items():
        print(f"{backend:<12}{r['lag_p50'] * 1000:>10.0f}{r['lag_p99'] * 1000:>10.0f}{1000:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
