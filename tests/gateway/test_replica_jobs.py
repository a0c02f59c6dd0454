"""Durable work across replicas: two `fno-gateway serve` processes on one PostgreSQL
run each job and each endpoint's deliveries once; when the one doing it is killed
(SIGKILL: no shutdown, nothing given back), the other takes it over once its lease has
run out, and nothing is lost. One that is stopped gives its work back at once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from datasources.dataverse import store as dataverse
from datasources.sql.stores import connect
from gateway.dualwrite.initial_sync import JOB_KIND as INITIAL_SYNC
from tests.conftest import Databases, build_store, sql_value
from tests.gateway.test_dualwrite import CUSTOMERS, customer
from tests.gateway.test_event_endpoints import ACTIVATE, CREATE_ENDPOINT, CREATED, Receiver
from tests.gateway.test_replicas import shared_stores
from tests.gateway.test_setup_kill import ENVIRONMENT, Server, TableLock
from tests.test_writes import CREATE

LEASE = 3  # seconds: how long a killed replica's work waits before it is taken over


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)
    return found


def holder(servers: list[Server], owner: str) -> Server:
    """The replica a lease holder's name (host:process:random) points at."""
    pid = int(owner.split(":")[1])
    return next(s for s in servers if s.process.pid == pid)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], list[Server]]]:
    servers: list[Server] = []

    def start(env: dict[str, str]) -> list[Server]:
        for name in ("a", "b"):
            servers.append(Server({**env, "GATEWAY_DATA_DIR": str(tmp_path / name)}))
        return list(servers)

    yield start
    for server in servers:
        server.stop()


@contextmanager
def webhook(server: Server) -> Iterator[Receiver]:
    """A receiver with the endpoint "hook" made for it, customer creations routed there."""
    receiver = Receiver()
    try:
        endpoint = {"name": "hook", "kind": "WEBHOOK", "url": receiver.url, "waitSeconds": 0}
        made = server.query(CREATE_ENDPOINT, {"input": endpoint})
        receiver.secret = made["createBusinessEventEndpoint"]["secret"]
        server.query(ACTIVATE, {"event": CREATED, "endpoint": "hook", "le": ""})
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def replica_env(databases: Databases, **more: str) -> dict[str, str]:
    return {
        **shared_stores(databases),
        "GATEWAY_POLL_SECONDS": "0.2",
        "GATEWAY_JOB_LEASE_SECONDS": str(LEASE),
        **more,
    }


def test_deliveries_run_once_across_replicas_and_survive_a_killed_one(
    databases: Databases, started: Callable[[dict[str, str]], list[Server]]
) -> None:
    env = replica_env(databases)
    control = env["GATEWAY_CONTROL_URL"]
    servers = started(env)
    with webhook(servers[1]) as receiver:

        def received() -> list[str]:
            return [e["CustomerAccount"] for e in receiver.events()]

        def write(accounts: list[str]) -> None:  # through both replicas, in turn
            for n, account in enumerate(accounts):
                servers[n % 2].query(CREATE, {"input": customer(account)})

        # both alive: each event is delivered by one of them, once, in order
        first = [f"RJ-{n:02}" for n in range(10)]
        write(first)
        wait_for(lambda: len(received()) >= len(first), 30, "the first deliveries")
        time.sleep(1)  # time for a second delivery, were there one
        assert received() == first

        # the replica delivering is killed in the middle of a batch
        receiver.delay = 0.3
        second = [f"RJ-{n:02}" for n in range(10, 20)]
        write(second)
        wait_for(lambda: len(received()) >= len(first) + 2, 30, "deliveries to start")
        owner = sql_value(control, "SELECT owner FROM lease WHERE name = 'deliveries to hook'")
        killed = holder(servers, owner)
        killed.kill()
        receiver.delay = 0
        cut = len(received())
        wait_for(lambda: set(second) <= set(received()), 30, "the survivor to deliver")
    got = received()
    assert len(got) >= len(first) + len(second)
    repeated = Counter(got) - Counter(set(got))
    assert set(repeated) <= set(got[len(first) : cut])  # only what was in flight, again
    assert list(dict.fromkeys(got)) == first + second  # in order, no gaps
    survivor = next(s for s in servers if s is not killed)
    now_held = sql_value(control, "SELECT owner FROM lease WHERE name = 'deliveries to hook'")
    assert holder(servers, now_held) is survivor


@pytest.mark.parametrize("ending", ["killed", "stopped"])
def test_an_initial_sync_runs_once_and_is_taken_over_from_a_replica_that_ends(
    ending: str, databases: Databases, started: Callable[[dict[str, str]], list[Server]]
) -> None:
    """Killed, the replica's job waits for its lease to run out; stopped, it finishes its
    step and gives the job back, so the other goes on at once (the lease is a minute)."""
    fno = databases.new("postgresql")
    build_store(fno, 0.5)
    existing = databases.new("postgresql")  # a Dataverse environment to link

    async def with_apps() -> None:
        async with connect(existing, write=True) as conn:
            await dataverse.create_native_tables(conn)

    asyncio.run(with_apps())
    lease = str(LEASE if ending == "killed" else 60)
    env = replica_env(
        databases,
        GATEWAY_FNO_URL=fno,
        GATEWAY_DEMO="true",
        GATEWAY_SYNC_BATCH="5",
        GATEWAY_JOB_LEASE_SECONDS=lease,
    )
    control = env["GATEWAY_CONTROL_URL"]
    a, b = servers = started(env)
    a.query(
        'mutation($u: String!) { registerDataverseEnvironment(name: "kept", url: $u) { name } }',
        {"u": existing},
    )
    b.query(
        f'mutation {{ setupPowerPlatformIntegration(environment: "{ENVIRONMENT}", '
        'acceptTerms: true, existingDataverseEnvironment: "kept") { state } }'
    )
    wait_for(lambda: a.status()["state"] == "COMPLETED", 60, "the setup")
    b.query(f'mutation {{ installDualWriteApplication(environment: "{ENVIRONMENT}") {{ state }} }}')
    installations = f'{{ addInInstallations(environment: "{ENVIRONMENT}") {{ state }} }}'
    wait_for(lambda: a.query(installations)["addInInstallations"] == [{"state": "INSTALLED"}])

    def progress(server: Server) -> list[dict[str, Any]]:
        maps = server.query("{ dualWriteMaps { name state initialSync { copied done } } }")
        found: list[dict[str, Any]] = next(
            m for m in maps["dualWriteMaps"] if m["name"] == CUSTOMERS
        )["initialSync"]
        return found

    a.query(
        f'mutation {{ runDualWriteMap(name: "{CUSTOMERS}", initialSync: true, master: FNO) '
        "{ name } }"
    )
    wait_for(lambda: sum(p["copied"] for p in progress(b)) > 0, 60, "customers to be copied")
    lock = TableLock(existing)  # holds the sync in the middle of a batch of customers
    lock.take("account")
    try:
        wait_for(lock.waiters, 30, "the sync to wait for the lock")
        owner = sql_value(
            control,
            f"SELECT lease_owner FROM job WHERE kind = '{INITIAL_SYNC}' AND lease_owner "
            "IS NOT NULL",
        )
        ended = holder(servers, owner)
        survivor = b if ended is a else a
        if ending == "killed":
            ended.kill()
        else:
            ended.process.send_signal(signal.SIGTERM)
    finally:
        lock.release()
    ended.process.wait(timeout=30)
    organizations = survivor.query(
        "{ customersV3(crossCompany: true, where: {partyType: {eq: Organization}}) { totalCount } }"
    )["customersV3"]["totalCount"]
    started_over = time.monotonic()
    wait_for(lambda: all(p["done"] for p in progress(survivor)), 60, "the survivor to finish")
    took = time.monotonic() - started_over
    if ending == "killed":
        assert took >= LEASE - 1  # not before the lease ran out
    else:
        assert took < 30  # given back, not waited out
    assert sum(p["copied"] for p in progress(survivor)) == organizations  # each batch once
    accounts = sql_value(existing, "SELECT count(*) FROM account")
    assert accounts == organizations  # nothing copied twice, nothing missing


def test_a_stopped_replica_gives_its_work_back_at_once(
    databases: Databases, started: Callable[[dict[str, str]], list[Server]]
) -> None:
    env = replica_env(databases, GATEWAY_JOB_LEASE_SECONDS="60")  # a kill would stall it
    control = env["GATEWAY_CONTROL_URL"]
    servers = started(env)
    with webhook(servers[0]) as receiver:
        servers[0].query(CREATE, {"input": customer("RS-1")})
        wait_for(lambda: len(receiver.events()) == 1, 30, "the first delivery")
        owner = sql_value(control, "SELECT owner FROM lease WHERE name = 'deliveries to hook'")
        stopping = holder(servers, owner)
        stopping.process.send_signal(signal.SIGTERM)
        stopping.process.wait(timeout=30)
        survivor = next(s for s in servers if s is not stopping)
        survivor.query(CREATE, {"input": customer("RS-2")})
        wait_for(lambda: len(receiver.events()) == 2, 10, "the survivor to deliver")
    assert [e["CustomerAccount"] for e in receiver.events()] == ["RS-1", "RS-2"]
