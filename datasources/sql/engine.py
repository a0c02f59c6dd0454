"""Store URLs and engines. Users write plain URLs; the async driver is chosen here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ClauseElement, event
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler

from gateway.kernel.errors import BadUserInput
from gateway.kernel.plan import Slot

BUSY_MS = 5000  # how long a SQLite writer waits for another to finish
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str) -> str:
    """`sqlite:///f.db` → `sqlite+aiosqlite:///f.db`, `postgresql://…` → `postgresql+asyncpg://…`."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported store URL {parsed!r}: use sqlite:/// or postgresql://")
    return parsed.set(drivername=_ASYNC_DRIVERS[backend]).render_as_string(hide_password=False)


def create_engine(url: str, pool_size: int | None = None, **options: Any) -> AsyncEngine:
    """An engine for a store URL. `pool_size` keeps that many connections open (server
    stores only): sized to the concurrency, so a busy gateway reuses connections instead
    of opening and closing overflow ones per request."""
    full = async_url(url)
    if pool_size is not None and not full.startswith("sqlite"):
        options = {"pool_size": pool_size, "max_overflow": pool_size, **options}
    engine = create_async_engine(full, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    event.listen(engine.sync_engine, "handle_error", _refused_value)
    return engine


async def dispose_when_idle(engine: AsyncEngine, wait: float = 5.0) -> None:
    """Dispose of an engine once the connections in use are back (a round of a
    background task, a request finishing): one still out when the pool is disposed is
    left to the garbage collector, open."""
    checked_out = getattr(engine.pool, "checkedout", lambda: 0)
    for _ in range(int(wait / 0.05)):
        if not checked_out():
            break
        await asyncio.sleep(0.05)
    await engine.dispose()


_REFUSED = {  # data exceptions (SQLSTATE class 22) a person can fix, in their words
    "22001": "a value is longer than the store keeps ({0})",
    "22021": "text may not contain the NUL character (U+0000)",
}


def _refused_value(context: ExceptionContext) -> None:
    """A value the store cannot hold (too long, out of range, a NUL character in text:
    PostgreSQL refuses what SQLite keeps) is the caller's to fix: BAD_USER_INPUT,
    wherever the statement came from. The transaction is rolled back as for any error."""
    sqlstate = getattr(context.original_exception, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith("22"):
        says = _REFUSED.get(sqlstate, "the store refused a value: {0}")
        raise BadUserInput(says.format(context.original_exception)) from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_MS}")
    cursor.close()


@dataclass(frozen=True)
class DriverStatement:
    """A statement as the driver runs it: SQL text and positional parameters, each
    through its type's bind processing (as SQLAlchemy does on every execution), and
    where a query variable's value goes (`Slot`s), with the processing it needs."""

    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str, Callable[[Any], Any] | None], ...] = ()

    def bind(self, arguments: Mapping[str, Any]) -> tuple[Any, ...]:
        if not self.slots:
            return self.params
        params = list(self.params)
        for index, name, process in self.slots:
            value = arguments[name]
            params[index] = process(value) if process else value
        return tuple(params)


def driver_sql(statement: ClauseElement, dialect: Dialect) -> DriverStatement:
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)
    values = compiled.construct_params()
    params: list[Any] = []
    slots = []
    for index, name in enumerate(compiled.positiontup or ()):
        # an IN list's values are named after its parameter: name_1, name_2, ...
        bind = compiled.binds[name if name in compiled.binds else name.rsplit("_", 1)[0]]
        process = bind.type.bind_processor(dialect)
        value = values[name]
        if isinstance(value, Slot):
            slots.append((index, value.name, process))
            value = None
        elif process is not None:
            value = process(value)
        params.append(value)
    return DriverStatement(compiled.string, tuple(params), tuple(slots))
