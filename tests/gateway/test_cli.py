"""The command line: demo store, tokens, schema, and `serve` as a user starts it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt

from gateway.cli import main
from tests.conftest import run_sql

BIN = Path(sys.executable).parent


def test_demo_builds_a_store_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--scale", "0.02", "--data-dir", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["demo", "--scale", "0.02", "--data-dir", str(tmp_path)]) == 1


def test_token_is_signed_with_the_data_folder_secret(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["token", "--sub", "alice", "--role", "reader", "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    secret = (tmp_path / "jwt-secret").read_text().strip()
    claims = jwt.decode(token, secret, algorithms=["HS256"], issuer="fno-gateway")
    assert claims["sub"] == "alice" and claims["roles"] == ["reader"]
    assert oct((tmp_path / "jwt-secret").stat().st_mode & 0o777) == "0o600"


def test_serve_creates_the_data_folder_and_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "GATEWAY_DEMO_SCALE": "0.02"}
    for attempt, expected in enumerate((10, 11)):
        port = 18600 + os.getpid() % 1000 + attempt
        process = subprocess.Popen(
            [str(BIN / "fno-gateway"), "serve", "--port", str(port), "--data-dir", str(data)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    response = httpx.post(
                        f"http://127.0.0.1:{port}/graphql",
                        json={"query": '{ customersV3(company: "USMF") { totalCount } }'},
                    )
                    break
                except httpx.ConnectError:
                    assert process.poll() is None
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert response.json() == {"data": {"customersV3": {"totalCount": expected}}}
        finally:
            process.terminate()
            output = process.communicate(timeout=20)[0]
        assert f"GraphiQL at http://127.0.0.1:{port}/graphql" in output
        assert (data / "fno.db").exists()
        assert (data / "control.db").exists()
        if attempt == 1:
            break
        # another F&O client adds a customer while the gateway is down; it must survive
        run_sql(
            f"sqlite:///{data / 'fno.db'}",
            "INSERT INTO custcustomerv3entity (dataareaid, customeraccount, partytype, customergroupid,"
            " creditlimitismandatory, salescurrencycode, onholdstatus)"
            " VALUES ('usmf', 'KEPT-1', 2, '10', 0, 'USD', 0)",
        )
