"""Several `fno-gateway serve` processes on one PostgreSQL behave as one gateway."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import JWT_SECRET, Databases, build_store
from tests.gateway.test_setup_kill import Server

FIELDS = "{ __schema { queryType { fields { name } } } }"
VISIBLE = 'mutation { setEntityVisible(name: "VendorGroup", visible: %s) { visible } }'


def query_fields(server: Server) -> set[str]:
    return {f["name"] for f in server.query(FIELDS)["__schema"]["queryType"]["fields"]}


def test_a_catalog_change_reaches_every_replica_within_a_second(
    databases: Databases, tmp_path: Path
) -> None:
    fno = databases.new("postgresql")
    build_store(fno, 0.02)
    env = {
        "GATEWAY_FNO_URL": fno,
        "GATEWAY_CONTROL_URL": databases.new("postgresql"),
        "GATEWAY_DEMO": "false",
        "GATEWAY_JWT_SECRET": JWT_SECRET,
        "GATEWAY_POLL_SECONDS": "30",  # only the notification can make it prompt
        "GATEWAY_LOG_LEVEL": "warning",
    }
    a = Server({**env, "GATEWAY_DATA_DIR": str(tmp_path / "a")})
    b = Server({**env, "GATEWAY_DATA_DIR": str(tmp_path / "b")})
    try:
        assert "vendorGroups" not in query_fields(b)  # not auto-created: hidden at first
        for visible in (True, False):
            a.query(VISIBLE % str(visible).lower())
            changed = time.monotonic()
            while ("vendorGroups" in query_fields(b)) is not visible:
                if time.monotonic() - changed > 1.0:
                    pytest.fail(f"replica B still serves the old schema after 1 s ({visible=})")
                time.sleep(0.02)
    finally:
        for server in (a, b):
            server.process.terminate()
            server.process.wait(timeout=30)
