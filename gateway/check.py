"""`fno-gateway check`: is the configuration valid, and does every store answer?

Each finding is a line a person can act on; the command fails if any is a problem.
Nothing is created or changed (a store that does not exist yet is said to be made on
the first start).
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
from pydantic import ValidationError
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url

from datasources.odata.endpoint import Endpoint, is_odata
from datasources.odata.source import ODataSource
from datasources.sql.engine import create_engine
from gateway.kernel.errors import GatewayError
from gateway.settings import CONFIG, Settings

TIMEOUT = 5.0  # seconds a store has to answer


@dataclass(frozen=True)
class Finding:
    subject: str
    message: str
    ok: bool

    def __str__(self) -> str:
        return f"{'ok ' if self.ok else 'BAD'} {self.subject}: {self.message}"


def configuration(overrides: dict[str, object]) -> tuple[Settings | None, list[Finding]]:
    """The settings, or what is wrong with them (every problem, each named as set)."""
    findings = list(_config_file())
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            findings.append(
                Finding(
                    f"GATEWAY_{name.upper()} / {name}",
                    f"{error['msg']} (given {error['input']!r})",
                    False,
                )
            )
        return None, findings
    findings.append(Finding("configuration", "every setting is valid", True))
    return settings, findings


def _config_file() -> Iterator[Finding]:
    path = os.environ.get(CONFIG)
    if not path:
        return
    try:
        with Path(path).open("rb") as file:
            values = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        yield Finding(f"{CONFIG}={path}", f"cannot be read: {exc}", False)
        return
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        yield Finding(
            f"{CONFIG}={path}",
            f"unknown settings {', '.join(unknown)} (`fno-gateway settings` lists them)",
            False,
        )


async def stores(settings: Settings) -> list[Finding]:
    findings = [
        await _store("F&O store", settings.store_url("fno"), settings.demo),
        await _store("control store", settings.store_url("control"), True),
    ]
    location = settings.dataverse_home()
    if location.startswith(("postgresql://", "postgres://")):
        findings.append(await _server("Dataverse location", location))
    else:
        findings.append(_folder("Dataverse location", Path(location)))
    if settings.uses_data_dir:
        findings.append(_folder("data folder", settings.data_dir))
    if settings.anonymous_reads and settings.host not in ("127.0.0.1", "localhost", "::1"):
        findings.append(
            Finding(
                "GATEWAY_ANONYMOUS_READS",
                f"anyone who reaches {settings.host}:{settings.port} can read F&O data",
                False,
            )
        )
    return findings


async def _service(name: str, url: str) -> Finding:
    """An OData store: its token endpoint gives a token, and `$metadata` is read."""
    try:
        source = ODataSource(Endpoint.parse(url))
    except GatewayError as exc:
        return Finding(name, f"{url}: {exc.message}", False)
    try:
        async with asyncio.timeout(TIMEOUT):
            entities = await source.published_entities()
    except Exception as exc:  # whatever the service says is the message
        return _unanswered(name, url, exc)
    finally:
        await source.close()
    return Finding(name, f"{url} answers ({len(entities)} entities published)", True)


async def _store(name: str, url: str, may_be_empty: bool) -> Finding:
    if is_odata(url):
        return await _service(name, url)
    shown = make_url(url).render_as_string(hide_password=True)
    if url.startswith("sqlite") and not await anyio.Path(make_url(url).database or "").exists():
        return Finding(name, f"{shown} does not exist yet; it is made on the first start", True)
    try:
        tables = await _tables(url)
    except Exception as exc:  # whatever the driver says is the message
        return _unanswered(name, shown, exc)
    if not may_be_empty and "sysdataentity" not in tables:
        problem = "publishes no entities (no sysdataentity table, and GATEWAY_DEMO=false)"
        return Finding(name, f"{shown} {problem}", False)
    return Finding(name, f"{shown} answers ({len(tables)} tables)", True)


async def _server(name: str, url: str) -> Finding:
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        await _tables(url)
    except Exception as exc:  # whatever the driver says is the message
        return _unanswered(name, shown, exc)
    return Finding(name, f"{shown} answers", True)


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with asyncio.timeout(TIMEOUT), engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: sa_inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def _unanswered(name: str, shown: str, exc: Exception) -> Finding:
    return Finding(name, f"{shown} does not answer: {type(exc).__name__}: {exc}", False)


def _folder(name: str, folder: Path) -> Finding:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return Finding(name, f"{folder} cannot be written ({existing} is not writable)", False)
    return Finding(name, f"{folder} is writable", True)
