"""Shared fixtures: demo stores on SQLite and PostgreSQL, and a real gateway server.

PostgreSQL tests read GATEWAY_TEST_PG_URL (an admin URL; each session creates and
drops its own databases). In CI (CI=true) a missing server fails the run; elsewhere
those tests skip with the reason.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote_plus

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy import event
from sqlalchemy.engine import make_url

from datasources.fno_demo.generate import build_demo_store
from datasources.sql.engine import create_engine
from gateway.app import create_app
from gateway.auth import Role
from gateway.runtime import Runtime
from gateway.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "GATEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
JWT_SECRET = "test-secret-" + "x" * 32
SESSION = uuid.uuid4().hex[:6]  # names this session's Dataverse databases, to drop them after
TEST_SCALE = 0.1  # 100 customers, 200 orders, ~1,000 lines
BACKENDS = ["sqlite", "postgresql"]


def _pg_available() -> str | None:
    async def probe() -> None:
        engine = create_engine(PG_ADMIN_URL)
        try:
            async with engine.connect():
                pass
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string()} is not reachable: {exc}"
    return None


def unavailable(reason: str) -> NoReturn:
    """Something a test needs is missing from this machine: in CI that is a failure
    (.ci/run provides it), elsewhere the test skips with the reason."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


PEER_SECRET = "GATEWAY_TEST_PEER_SECRET"  # the env variable an OData peer's secret is in
os.environ.setdefault(PEER_SECRET, "s3cret")


def odata_url(peer: Any, dialect: str = "fno") -> str:
    """The store URL of an OData peer (tests/peers), with client credentials from its
    token endpoint, as a user would name a real F&O environment's."""
    return (
        f"{peer.url}?tenant=contoso&client_id=gateway&client_secret=env:{PEER_SECRET}"
        f"&authority={peer.authority}&dialect={dialect}"
    )


@pytest.fixture(scope="session")
def pg_admin() -> str:
    reason = _pg_available()
    if reason is not None:
        unavailable(reason)
    return PG_ADMIN_URL


class Databases:
    """Makes throwaway databases: SQLite files, or PostgreSQL databases dropped at the end."""

    def __init__(self, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.tmp = tmp
        self.request = request
        self.created: list[str] = []
        self.admin: str | None = None

    def new(self, backend: str) -> str:
        name = f"fno_test_{uuid.uuid4().hex[:10]}"
        if backend == "sqlite":
            return f"sqlite:///{self.tmp / name}.db"
        admin = self.admin = self.request.getfixturevalue("pg_admin")
        _pg_execute(admin, f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(admin).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self.admin is not None:
            for name in [*self.created, *_pg_names(self.admin, f"dataverse_t{SESSION}%")]:
                _pg_execute(self.admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_names(admin_url: str, pattern: str) -> list[str]:
    async def run() -> list[str]:
        from sqlalchemy import text

        engine = create_engine(admin_url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": pattern}
                )
                return [r[0] for r in rows]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _pg_execute(admin_url: str, sql: str) -> None:
    async def run() -> None:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(sql)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def databases(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("stores"), request)
    yield dbs
    dbs.drop_all()


def build_store(url: str, scale: float = TEST_SCALE) -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            await build_demo_store(engine, scale)
        finally:
            await engine.dispose()

    asyncio.run(run())


@dataclass
class Gateway:
    """A gateway served by uvicorn on a free port, with a real HTTP client."""

    url: str
    app: Any
    client: httpx.Client
    backend: str
    fno_url: str
    server: ServerThread
    _reader: str | None = None
    peer: Any = None  # the OData service an "odata" gateway reads (tests/peers)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop, where its engines live."""
        return self.server.loop

    @property
    def fast(self) -> bool:
        """Whether entity reads take the fast path (JSON built by the store)."""
        return self.runtime.settings.fast_reads and self.peer is None

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def token(self, *roles: Role, sub: str = "tester", companies: list[str] | None = None) -> str:
        import datetime as dt

        return self.runtime.auth.issue(sub, list(roles), dt.timedelta(hours=1), companies)

    def query(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """Sent as a reader of every company unless `token` says otherwise (ANONYMOUS: none)."""
        if token is None:
            token = self.reader
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        body: dict[str, Any] = response.json()
        return body

    def data(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> Any:
        body = self.query(query, variables, token)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def error(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        body = self.query(query, variables, token)
        assert body.get("errors"), body
        error: dict[str, Any] = body["errors"][0]
        return error

    @property
    def reader(self) -> str:
        if self._reader is None:
            self._reader = self.token(Role.READER)
        return self._reader

    def run(self, coroutine: Any, timeout: float = 60) -> Any:
        """Run a coroutine on the server's loop (where its engines live) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def count_statements(self) -> StatementCounter | RequestCounter:
        """What the F&O store is asked while the block runs: SQL statements, or the
        requests an OData service receives."""
        if self.peer is not None:
            return RequestCounter(self.peer)
        return StatementCounter(self.runtime.fno.engine.sync_engine)  # type: ignore[union-attr]


class RequestCounter:
    """The data requests an OData peer receives (its legal entities, which the gateway
    looks up to check a company and keeps a minute, left out)."""

    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self.statements: list[str] = []

    def __enter__(self) -> RequestCounter:
        self._start = len(self.peer.requests)
        return self

    def __exit__(self, *_: object) -> None:
        for _method, path in self.peer.requests[self._start :]:
            if not path.startswith("/data/LegalEntities"):
                self.statements.append(unquote_plus(path))


class StatementCounter:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._record)
        # the fast read path runs its prepared SQL on the driver directly
        fetchrow = self._fetchrow = asyncpg.Connection.fetchrow

        async def counted(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            self._record(conn, None, query)
            return await fetchrow(conn, query, *args, **kwargs)

        asyncpg.Connection.fetchrow = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)
        asyncpg.Connection.fetchrow = self._fetchrow  # type: ignore[method-assign]

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "fno_event_outbox" not in statement:  # the event relay's look, not a read's
            self.statements.append(statement)


@dataclass
class ServerThread:
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

    @property
    def port(self) -> int:
        port: int = self.server.servers[0].sockets[0].getsockname()[1]
        return port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.loop.close()


def serve(app: Any) -> ServerThread:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    return ServerThread(server, thread, loop)


def start_gateway(
    tmp: Path, backend: str, fno_url: str, **settings: Any
) -> tuple[Gateway, ServerThread]:
    defaults: dict[str, Any] = {
        "data_dir": tmp,
        "fno_url": fno_url,
        "control_url": f"sqlite:///{tmp / 'control.db'}",
        "demo": False,
        "jwt_secret": JWT_SECRET,
    }
    config = Settings(**{**defaults, **settings})
    app = create_app(config)
    running = serve(app)
    client = httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=30)
    return Gateway(
        f"http://127.0.0.1:{running.port}", app, client, backend, fno_url, running
    ), running


ANONYMOUS = ""  # token=ANONYMOUS sends no credentials

READ_PATHS = ["sqlite", "sqlite-generic", "postgresql", "postgresql-generic"]


@pytest.fixture(scope="session")
def read_stores(databases: Databases) -> Callable[[str], str]:
    """One demo store per backend, shared by every read-only gateway."""
    stores: dict[str, str] = {}

    def get(backend: str) -> str:
        if backend not in stores:
            stores[backend] = databases.new(backend)
            build_store(stores[backend])
        return stores[backend]

    return get


@pytest.fixture(scope="session")
def odata_peer(read_stores: Callable[[str], str]) -> Iterator[Any]:
    """An OData service shaped like F&O's `/data` (odatapy, tests/peers) serving the
    SQLite demo store's rows, in pages of 25 so that reads follow its next links."""
    from tests.peers.odata.peer import start

    with start(read_stores("sqlite"), page_size=25) as peer:
        yield peer


@pytest.fixture(scope="session", params=[*READ_PATHS, "odata", "odata-generic"])
def gateway(
    request: pytest.FixtureRequest,
    read_stores: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """A read-only gateway over a shared demo store: per backend, once with the fast
    read path (JSON built in the store) and once without."""
    backend, _, generic = request.param.partition("-")
    folder = tmp_path_factory.mktemp(f"gw-{request.param}")
    if backend == "odata":
        peer = request.getfixturevalue("odata_peer")
        gw, running = start_odata_gateway(folder, peer, fast_reads=not generic)
    else:
        gw, running = start_gateway(folder, backend, read_stores(backend), fast_reads=not generic)
    yield gw
    gw.client.close()
    running.stop()


def start_odata_gateway(folder: Path, peer: Any, **settings: Any) -> tuple[Gateway, ServerThread]:
    """A gateway over an OData peer, with every entity it publishes visible."""
    gw, running = start_gateway(folder, "odata", odata_url(peer), **settings)
    gw.peer = peer
    for entity in gw.run(gw.runtime.catalog.entries()):
        gw.run(gw.runtime.catalog.set_visible(entity.name, True))
    gw.run(gw.runtime.schemas.rebuild())
    return gw, running


@pytest.fixture(params=BACKENDS)
def fresh_gateway(
    request: pytest.FixtureRequest, gateways: Callable[..., Gateway], tmp_path: Path
) -> Callable[..., Gateway]:
    """A factory for a gateway over its own small store, for tests that change things;
    the gateways a test starts share its folder (and so a SQLite control store)."""
    return lambda **settings: gateways(request.param, folder=tmp_path, **settings)


@pytest.fixture
def gateways(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Gateway]]:
    """A factory for gateways over small stores of their own, with the settings a test
    asks for (SQLite unless it asks for another backend)."""
    started: list[tuple[Gateway, ServerThread]] = []

    def start(backend: str = "sqlite", folder: Path | None = None, **settings: Any) -> Gateway:
        url = databases.new(backend)
        build_store(url, 0.02)
        folder = folder or tmp_path_factory.mktemp("gw")
        gw, running = start_gateway(folder, backend, url, **settings)
        started.append((gw, running))
        return gw

    yield start
    for gw, running in started:
        gw.client.close()
        running.stop()


@pytest.fixture(params=BACKENDS)
def control_plane(
    request: pytest.FixtureRequest, databases: Databases, tmp_path: Path
) -> Iterator[Callable[..., Gateway]]:
    """A factory for a gateway whose stores (F&O, control, and the Dataverse stores setup
    creates) are all on one backend, with the demo tenant (admin@contoso.com)."""
    backend = request.param
    started: list[tuple[Gateway, ServerThread]] = []

    def start(**settings: Any) -> Gateway:
        folder = tmp_path / f"gw{len(started)}"
        folder.mkdir()
        fno = databases.new(backend)
        build_store(fno, 0.02)
        pg = backend == "postgresql"
        options: dict[str, Any] = {
            "control_url": databases.new(backend) if pg else f"sqlite:///{folder / 'control.db'}",
            "dataverse_location": databases.admin if pg else str(folder / "dataverse"),
            "demo": True,
            "poll_seconds": 0.1,
            **settings,
        }
        gw, running = start_gateway(folder, backend, fno, **options)
        started.append((gw, running))
        return gw

    yield start
    for gw, running in started:
        gw.client.close()
        running.stop()


def environment_name() -> str:
    """An environment name no other test uses (its Dataverse database is named after it)."""
    return f"t{SESSION}-{uuid.uuid4().hex[:8]}"


def run_sql(url: str, *statements: str, params: dict[str, Any] | None = None) -> None:
    """Write straight into a store, as another F&O client would."""
    from sqlalchemy import text

    async def run() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                for statement in statements:
                    await conn.execute(text(statement), params or {})
        finally:
            await engine.dispose()

    asyncio.run(run())


def sql_value(url: str, statement: str) -> Any:
    """The one value a statement reads from a store."""
    from sqlalchemy import text

    async def run() -> Any:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return (await conn.execute(text(statement))).scalar()
        finally:
            await engine.dispose()

    return asyncio.run(run())
