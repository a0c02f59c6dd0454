"""Faults survived with nothing lost: PostgreSQL restarted under a stream of writes
and reads, and the message broker or a webhook receiver down while events are raised.

The tests run servers of their own (the machine's PostgreSQL and NATS binaries, fresh
data folders, free ports), so stopping them disturbs nothing else. Afterwards every
write the gateway acknowledged is in the store, every stored row raised its event
exactly once, every event reached the broker once (kept as an error while it was down,
then resent), and the gateway answers again.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from sqlalchemy.engine import make_url

from datasources.sql.engine import create_engine
from gateway.auth import Role
from tests.conftest import JWT_SECRET, Gateway, build_store, sql_value, unavailable
from tests.gateway.test_dualwrite import customer, wait_for
from tests.gateway.test_event_endpoints import (
    CREATE_ENDPOINT,
    DELIVERIES,
    ERRORS,
    RESEND,
    Receiver,
    activate,
)
from tests.gateway.test_replicas import bearer
from tests.gateway.test_setup_kill import Server, free_port
from tests.test_writes import CREATE

READ = '{ customersV3(company: "USMF", first: 3) { nodes { customerAccount } } }'


@dataclass
class PrivatePostgres:
    bin: Path
    data: Path
    url: str

    def ctl(self, *args: str) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                *args,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def restart(self) -> None:
        """Fast: sessions are ended, transactions in flight rolled back."""
        self.ctl("restart", "-m", "fast", "-w", "-l", str(self.data / "log"))

    def database(self, name: str) -> str:
        async def make() -> None:
            engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
            async with engine.connect() as conn:
                await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            await engine.dispose()

        asyncio.run(make())
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions or shutil.which("runuser") is None:
        unavailable("PostgreSQL's server binaries (apt-get install postgresql) are not here")
    bin = versions[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="fno-pg-"))
    folder.chmod(0o755)
    data = folder / "data"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    port = free_port()
    server = PrivatePostgres(bin, data, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(bin / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server.ctl(
        "start",
        "-w",
        "-l",
        str(data / "log"),
        "-o",
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
    )
    try:
        yield server
    finally:
        server.ctl("stop", "-m", "immediate")
        shutil.rmtree(folder, ignore_errors=True)


def listed(url: str, statement: str) -> list[Any]:
    """The JSON array a statement reads (the driver may have decoded it already)."""
    found = sql_value(url, statement)
    return list(json.loads(found) if isinstance(found, str) else found)


def test_a_postgresql_restart_under_writes_loses_nothing(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    fno, control = private_postgres.database("fno"), private_postgres.database("control")
    build_store(fno, 0.02)
    server = Server(
        {
            "GATEWAY_FNO_URL": fno,
            "GATEWAY_CONTROL_URL": control,
            "GATEWAY_DATA_DIR": str(tmp_path),
            "GATEWAY_DEMO": "false",
            "GATEWAY_JWT_SECRET": JWT_SECRET,
            "GATEWAY_POLL_SECONDS": "0.2",
            "GATEWAY_LOG_LEVEL": "error",
        },
        output=tmp_path / "gateway.log",
    )
    headers = {"Authorization": f"Bearer {bearer('writer')}"}
    outcomes: dict[str, bool] = {}  # account: acknowledged
    reads: list[bool] = []  # answered with data
    refusals: set[str] = set()  # how failures were told: status and code
    stop = threading.Event()

    def send(client: httpx.Client, query: str, variables: dict[str, Any] | None) -> bool:
        response = client.post(
            server.url, json={"query": query, "variables": variables}, headers=headers
        )
        errors = response.json().get("errors") or []
        refusals.update(f"{response.status_code} {e['extensions']['code']}" for e in errors)
        return response.status_code == 200 and not errors

    def write() -> None:
        n = 0
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                account = f"FR-{n:05}"
                outcomes[account] = send(client, CREATE, {"input": customer(account)})
                n += 1

    def read() -> None:  # the fast path's own pool, through the restart
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                reads.append(send(client, READ, None))

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(2)
        before = len(outcomes)
        private_postgres.restart()
        restarted = time.monotonic()
        while time.monotonic() - restarted < 20:  # until writes and reads go through again
            time.sleep(0.5)
            recent = list(outcomes.values())[-5:] + reads[-5:]
            if len(outcomes) > before + 10 and all(recent):
                break
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

        assert all(reads[-5:]), "reads did not recover"
        assert refusals <= {"200 UPSTREAM_FAILED"}, refusals  # told plainly, never a 5xx
        acknowledged = {a for a, ok in outcomes.items() if ok}
        assert all(list(outcomes.values())[-5:]), "the gateway did not recover"
        stored = set(
            listed(
                fno,
                "SELECT coalesce(json_agg(customeraccount), '[]') FROM custcustomerv3entity "
                "WHERE customeraccount LIKE 'FR-%'",
            )
        )
        assert acknowledged <= stored  # nothing acknowledged is lost
        assert stored <= set(outcomes)  # nothing appears that was not asked for

        deadline = time.monotonic() + 30  # the outbox drains into the event log
        while (
            sql_value(fno, "SELECT count(*) FROM fno_event_outbox") and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        logged = listed(
            control,
            "SELECT coalesce(json_agg(payload), '[]') FROM business_event_log "
            "WHERE business_event = 'CustomerCreatedBusinessEvent'",
        )
        raised = [json.loads(p)["CustomerAccount"] for p in logged]
        raised = [a for a in raised if a.startswith("FR-")]
        assert sorted(raised) == sorted(stored)  # each stored row raised its event once
        read = httpx.post(
            server.url,
            json={
                "query": '{ customersV3(company: "USMF", first: 3) { nodes { customerAccount } } }'
            },
            headers=headers,
        ).json()
        assert "errors" not in read, read
    finally:
        stop.set()
        server.stop()


class PrivateNats:
    """A NATS server with JetStream of the test's own, which it can stop and start."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(binary).exists():
            unavailable("nats-server is not installed (apt-get install nats-server)")
        self.command = [
            binary,
            "-a",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-js",
            "-sd",
            str(folder),
        ]
        self.url = f"nats://127.0.0.1:{self.command[4]}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", int(self.command[4])), timeout=1):
                    return
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not start"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def test_events_for_a_broker_that_was_down_are_kept_and_resent(
    gateways: Callable[..., Gateway], tmp_path: Path
) -> None:
    broker = PrivateNats(tmp_path / "jetstream")
    broker.start()
    gw = gateways()
    admin = gw.token(Role.ADMIN, sub="ops@contoso.com")
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    endpoint = {
        "name": "bus",
        "kind": "BROKER",
        "url": broker.url,
        "subject": "fno.faults",
        "tries": 2,
        "waitSeconds": 0,
    }
    try:
        gw.data(CREATE_ENDPOINT, {"input": endpoint}, token=admin)
        activate(gw, admin, "bus")

        def write(accounts: list[str]) -> None:
            for account in accounts:
                gw.data(CREATE, {"input": customer(account)}, token=writer)

        def delivered() -> set[str]:
            log = gw.data(DELIVERIES, {"endpoint": "bus"}, token=admin)
            return {d["controlNumber"] for d in log["businessEventDeliveries"] if d["delivered"]}

        write(["NF-1", "NF-2", "NF-3"])
        wait_for(lambda: len(delivered()) == 3)
        broker.stop()
        time.sleep(8)  # the client's reconnection attempts run out
        write(["NF-4", "NF-5", "NF-6"])

        def pending() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = gw.data(
                ERRORS, {"endpoint": "bus", "pending": True}, token=admin
            )["businessEventErrors"]
            return found

        wait_for(lambda: len(pending()) == 3, 120)  # kept, not dropped
        broker.start()
        write(["NF-7", "NF-8", "NF-9"])
        wait_for(lambda: len(delivered()) == 6, 60)
        resent = gw.data(RESEND, {"ids": [e["id"] for e in pending()]}, token=admin)
        assert all(r["outcome"]["delivered"] for r in resent["resendBusinessEventErrors"])
        assert pending() == []

        async def consume() -> list[str]:
            connection = await nats.connect(broker.url)
            try:
                pull = await connection.jetstream().pull_subscribe("fno.faults", durable=None)
                messages: list[Any] = []
                for _ in range(20):
                    try:
                        messages += await pull.fetch(20, timeout=1)
                    except nats.errors.TimeoutError:
                        break
                return [json.loads(m.data)["CustomerAccount"] for m in messages]
            finally:
                await connection.close()

        received = asyncio.run(consume())
        assert sorted(received) == [f"NF-{n}" for n in range(1, 10)]  # each once, none lost
    finally:
        broker.stop()


def test_events_for_a_webhook_receiver_that_was_down_are_kept_and_resent(
    gateways: Callable[..., Gateway],
) -> None:
    """Down longer than its retries last (two tries a second apart): what it missed is
    kept in the errors store, not dropped, and reaches it once when resent."""
    gw = gateways()
    admin = gw.token(Role.ADMIN, sub="ops@contoso.com")
    writer = gw.token(Role.WRITER, sub="rep@contoso.com")
    first = Receiver()
    endpoint = {"name": "hook", "kind": "WEBHOOK", "url": first.url, "tries": 2, "waitSeconds": 1}
    made = gw.data(CREATE_ENDPOINT, {"input": endpoint}, token=admin)
    first.secret = made["createBusinessEventEndpoint"]["secret"]
    activate(gw, admin, "hook")

    def write(accounts: list[str]) -> None:
        for account in accounts:
            gw.data(CREATE, {"input": customer(account)}, token=writer)

    def pending() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = gw.data(
            ERRORS, {"endpoint": "hook", "pending": True}, token=admin
        )["businessEventErrors"]
        return found

    write(["HD-1", "HD-2", "HD-3"])
    wait_for(lambda: len(first.events()) == 3)
    first.server.shutdown()  # down: connections are refused
    first.server.server_close()
    write(["HD-4", "HD-5", "HD-6"])
    wait_for(lambda: len(pending()) == 3, 60)
    back = Receiver(port=int(first.url.split(":")[2].split("/")[0]))
    back.secret = first.secret
    try:
        write(["HD-7", "HD-8", "HD-9"])
        wait_for(lambda: len(back.events()) == 3, 60)
        resent = gw.data(RESEND, {"ids": [e["id"] for e in pending()]}, token=admin)
        assert all(r["outcome"]["delivered"] for r in resent["resendBusinessEventErrors"])
        assert pending() == []
    finally:
        back.server.shutdown()
        back.server.server_close()
    got = [e["CustomerAccount"] for e in first.events() + back.events()]
    assert sorted(got) == [f"HD-{n}" for n in range(1, 10)]  # each once, none lost
    assert all(r["signed"] for r in first.received + back.received)
