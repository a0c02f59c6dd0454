"""A gateway process killed in the middle of a setup stage: the job survives, and
another gateway sharing the stores takes it over once its lease runs out and finishes it."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from datasources.dataverse import store as dataverse
from datasources.sql.engine import create_engine
from datasources.sql.stores import connect
from gateway.jobs import job
from gateway.kernel.setup import PLATFORM_COMPONENTS, Template
from gateway.setup.service import JOB_KIND
from gateway.setup.status import integration
from tests.conftest import BACKENDS, JWT_SECRET, Databases, build_store

BIN = Path(sys.executable).parent
ADMIN = "admin@contoso.com"
ENVIRONMENT = "contoso-sandbox"  # the demo tenant's environment


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """`fno-gateway serve` in its own process, as an operator runs it."""

    def __init__(self, env: dict[str, str], output: Path | None = None) -> None:
        """`output`: a file for what it prints (else it is dropped)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        with output.open("wb") if output else open(os.devnull, "wb") as sink:
            self.process = subprocess.Popen(
                [str(BIN / "fno-gateway"), "serve", "--port", str(self.port)],
                env={**os.environ, **env},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz")
                return
            except httpx.ConnectError:
                assert self.process.poll() is None, "the gateway exited"
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.1)

    def query(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        now = int(time.time())
        claims = {"sub": ADMIN, "roles": ["admin"], "iss": "fno-gateway", "exp": now + 600}
        token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
        body = httpx.post(
            self.url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        assert "errors" not in body, body
        return body["data"]

    def status(self) -> dict[str, Any]:
        found: dict[str, Any] = self.query(
            f'{{ integrationStatus(environment: "{ENVIRONMENT}") {{ state stage error }} }}'
        )["integrationStatus"]
        return found

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no shutdown, no lease given back
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


class TableLock:
    """Another client holding the Dataverse store's solution table, so the install
    stage blocks in the middle of its work until the lock is let go."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.held: Any = None

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def take(self, table: str = "solution") -> None:
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            self.held = sqlite3.connect(str(parsed.database), isolation_level=None)
            self.held.execute("BEGIN EXCLUSIVE")
            return

        async def lock() -> Any:
            import asyncpg

            conn = await asyncpg.connect(
                parsed.set(drivername="postgresql").render_as_string(False)
            )
            await conn.execute("BEGIN")
            await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            return conn

        self.held = self._run(lock())

    def waiters(self) -> int:
        """Sessions waiting for a lock in that database (PostgreSQL only)."""

        async def count() -> int:
            found = await self.held.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE NOT l.granted AND d.datname = current_database()"
            )
            return int(found)

        result: int = self._run(count())
        return result

    def release(self) -> None:
        """Let go (again: nothing)."""
        if self.loop.is_closed():
            return
        if isinstance(self.held, sqlite3.Connection):
            self.held.execute("ROLLBACK")
            self.held.close()
        elif self.held is not None:
            self._run(self.held.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def control_row(url: str, what: Any, where: Any) -> Any:
    async def read() -> Any:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return (await conn.execute(select(what).where(where))).first()
        finally:
            await engine.dispose()

    return asyncio.run(read())


def in_store(url: str, read: Any) -> Any:
    async def run() -> Any:
        async with connect(url, write=False) as conn:
            return await read(conn)

    return asyncio.run(run())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_gateways_setup_is_taken_over_by_another(
    backend: str, databases: Databases, tmp_path: Path
) -> None:
    """Two gateways share the stores; the one running the setup is killed in the middle
    of a stage, and the other finishes the setup once the lease has run out."""
    fno = databases.new(backend)
    build_store(fno, 0.02)
    control = databases.new(backend) if backend == "postgresql" else f"sqlite:///{tmp_path}/c.db"
    existing = databases.new(backend)  # an existing Dataverse environment, D365 apps enabled

    async def with_apps() -> None:
        async with connect(existing, write=True) as conn:
            await dataverse.create_native_tables(conn)

    asyncio.run(with_apps())
    env = {
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_FNO_URL": fno,
        "GATEWAY_CONTROL_URL": control,
        "GATEWAY_DEMO": "true",
        "GATEWAY_JWT_SECRET": JWT_SECRET,
        "GATEWAY_JOB_LEASE_SECONDS": "2",
        "GATEWAY_POLL_SECONDS": "0.2",
        "GATEWAY_LOG_LEVEL": "warning",
    }
    servers = [Server(env), Server(env)]
    lock = TableLock(existing)
    try:
        servers[0].query(
            'mutation($u: String!) { registerDataverseEnvironment(name: "kept", url: $u) '
            "{ name } }",
            {"u": existing},
        )
        lock.take()
        servers[1].query(
            f'mutation {{ setupPowerPlatformIntegration(environment: "{ENVIRONMENT}", '
            'acceptTerms: true, existingDataverseEnvironment: "kept") { state } }'
        )
        deadline = time.monotonic() + 30
        while servers[0].status()["stage"] != "INSTALL_PLATFORM_COMPONENTS":
            assert time.monotonic() < deadline, servers[0].status()
            time.sleep(0.02)
        if backend == "postgresql":  # the stage is inside its work, waiting on the lock
            while lock.waiters() == 0:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        (owner,) = control_row(control, job.c.lease_owner, job.c.kind == JOB_KIND)
        pid = int(owner.split(":")[1])  # lease holders are named host:pid:random
        killed = next(s for s in servers if s.process.pid == pid)
        survivor = next(s for s in servers if s is not killed)
        killed.kill()
        row = control_row(control, integration, integration.c.environment == ENVIRONMENT)
        assert (row.state, row.stage) == ("IN_PROGRESS", "INSTALL_PLATFORM_COMPONENTS")
        lock.release()
        assert in_store(existing, dataverse.solutions) == []  # the stage's work did not land

        deadline = time.monotonic() + 60
        while (found := survivor.status())["state"] != "COMPLETED":
            assert found["state"] == "IN_PROGRESS", found
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
    finally:
        lock.release()
        for server in servers:
            server.stop()
    assert sorted(in_store(existing, dataverse.solutions)) == sorted(
        PLATFORM_COMPONENTS[Template.STANDARD]
    )
    assert in_store(existing, dataverse.link_details)["environment"] == ENVIRONMENT
