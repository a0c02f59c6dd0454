"""Short-lived connections to stores named by URL (environments' stores, not the
gateway's own engines), with failures reported in the store's own words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from datasources.sql.engine import create_engine
from gateway.kernel.errors import UpstreamFailed


def redact(url: str) -> str:
    """A store URL as it may be shown or logged: without its password (an OData
    store's URL holds none: it names its secret by reference)."""
    if url.startswith(("http://", "https://")):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable store URL>"


def describe(exc: BaseException) -> str:
    """The store's own words for a failure, without SQLAlchemy's boilerplate."""
    if isinstance(exc, SQLAlchemyError) and getattr(exc, "orig", None) is not None:
        return str(exc.orig).strip().splitlines()[0]  # type: ignore[attr-defined]
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@asynccontextmanager
async def connect(url: str, *, write: bool) -> AsyncIterator[AsyncConnection]:
    """A connection to a store that turns every driver failure into UPSTREAM_FAILED
    with the store's message; `write` runs it as one transaction."""
    engine = create_engine(url)
    try:
        async with engine.begin() if write else engine.connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise UpstreamFailed(f"the store at {redact(url)} failed: {describe(exc)}") from exc
    except OSError as exc:
        raise UpstreamFailed(f"the store at {redact(url)} is unreachable: {exc}") from exc
    finally:
        await engine.dispose()


async def probe(url: str) -> None:
    """Raise UPSTREAM_FAILED unless the store answers."""
    parsed = make_url(url)
    if (
        parsed.get_backend_name() == "sqlite"
        and not await anyio.Path(str(parsed.database)).exists()
    ):
        raise UpstreamFailed(f"the store at {redact(url)} does not exist")
    async with connect(url, write=False) as conn:
        await conn.execute(text("SELECT 1"))
