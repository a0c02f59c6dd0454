"""The control store's schema is kept by Alembic migrations: an empty store is created
at the newest revision, one made before migrations is adopted and upgraded with its
data, and a gateway told not to migrate refuses a store at another revision."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from datasources.sql.engine import create_engine
from gateway import control
from gateway.cli import main
from tests.conftest import BACKENDS, Databases, run_sql, sql_value


def differences(url: str) -> list[object]:
    """What the store's schema lacks or has beyond the models (nothing, when migrated)."""

    def compare(conn: Connection) -> list[object]:
        control.load_tables()
        return list(compare_metadata(MigrationContext.configure(conn), control.control_metadata))

    async def run() -> list[object]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def migrated_to(url: str, revision: str) -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            await control.migrate(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrate_creates_an_empty_store_at_the_newest_revision(
    backend: str, databases: Databases, capsys: pytest.CaptureFixture[str]
) -> None:
    url = databases.new(backend)
    assert main(["migrate", "--control-url", url]) == 0
    assert f"revision (none) -> {control.head()}" in capsys.readouterr().out
    assert sql_value(url, "SELECT version_num FROM alembic_version") == control.head()
    assert differences(url) == []
    assert main(["migrate", "--control-url", url]) == 0  # again: nothing to do
    assert f"revision {control.head()} -> {control.head()}" in capsys.readouterr().out


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_made_before_migrations_is_adopted_with_its_data(
    backend: str, databases: Databases
) -> None:
    url = databases.new(backend)
    migrated_to(url, control.BASELINE)  # the schema those releases made with create-all,
    run_sql(url, "DROP TABLE alembic_version")  # which left no revision behind
    run_sql(
        url,
        "INSERT INTO api_key (id, hash, subject, roles, description, created_at) "
        "VALUES ('k1', 'h', 'bot@contoso.com', 'reader', 'kept', '2026-01-01 00:00:00')",
    )
    assert main(["migrate", "--control-url", url]) == 0
    assert sql_value(url, "SELECT version_num FROM alembic_version") == control.head()
    assert sql_value(url, "SELECT subject FROM api_key WHERE id = 'k1'") == "bot@contoso.com"
    assert differences(url) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_at_the_previous_revision_is_upgraded_with_its_data(
    backend: str, databases: Databases
) -> None:
    url = databases.new(backend)
    migrated_to(url, "0001")
    held_by = "gateway-7f9c4d6b8-x2k4q.prod.contoso.internal:4242:9b1c2d3e"  # > 40 characters
    run_sql(
        url,
        "INSERT INTO job (kind, key, due, lease_owner, attempts, requests) "
        "VALUES ('setup', 'contoso-sandbox', true, 'a1b2', 0, 1)",
    )
    assert main(["migrate", "--control-url", url]) == 0
    assert sql_value(url, "SELECT version_num FROM alembic_version") == control.head()
    assert sql_value(url, "SELECT lease_owner FROM job WHERE kind = 'setup'") == "a1b2"
    run_sql(url, f"UPDATE job SET lease_owner = '{held_by}'")  # the wider holder names fit
    assert sql_value(url, "SELECT lease_owner FROM job") == held_by
    assert sql_value(url, "SELECT count(*) FROM lease") == 0
    assert differences(url) == []


def test_a_gateway_that_may_not_migrate_refuses_a_store_at_another_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_MIGRATE_ON_START", "false")
    monkeypatch.setenv("GATEWAY_DEMO_SCALE", "0.02")
    with pytest.raises(SystemExit, match="run `fno-gateway migrate`"):
        main(["schema", "--data-dir", str(tmp_path)])
    assert main(["migrate", "--data-dir", str(tmp_path)]) == 0
    assert main(["schema", "--data-dir", str(tmp_path)]) == 0
