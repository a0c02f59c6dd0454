"""The command line: demo store, tokens, schema, and `serve` as a user starts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from graphql import (
    build_client_schema,
    build_schema,
    lexicographic_sort_schema,
    print_schema,
)

from gateway.cli import main
from gateway.settings import Settings
from tests.conftest import run_sql

BIN = Path(sys.executable).parent


def test_demo_builds_a_store_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--scale", "0.02", "--data-dir", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["demo", "--scale", "0.02", "--data-dir", str(tmp_path)]) == 1


def test_jwt_is_signed_with_the_data_folder_secret(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    args = ["token", "jwt", "--sub", "alice", "--role", "reader", "--company", "USMF"]
    assert main([*args, "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    secret = (tmp_path / "jwt-secret").read_text().strip()
    claims = jwt.decode(token, secret, algorithms=["HS256"], issuer="fno-gateway")
    assert claims["sub"] == "alice" and claims["roles"] == ["reader"]
    assert claims["companies"] == ["usmf"]
    assert oct((tmp_path / "jwt-secret").stat().st_mode & 0o777) == "0o600"


def test_api_keys_are_created_listed_and_revoked(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = ["--data-dir", str(tmp_path)]
    assert main(["token", "create", "--sub", "bot@contoso.com", "--role", "reader", *data]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("fgk_")
    assert main(["token", "list", *data]) == 0
    listed = capsys.readouterr().out
    key_id = key[4:16]
    assert key_id in listed and "bot@contoso.com" in listed and "active" in listed
    assert key not in listed  # the secret is never shown again
    assert main(["token", "revoke", key_id, *data]) == 0
    assert main(["token", "list", *data]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["token", "revoke", "nosuchkey", *data]) == 1
    assert "no API key" in capsys.readouterr().err


def test_serve_creates_the_data_folder_and_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "GATEWAY_DEMO_SCALE": "0.02"}
    admin_key = None
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
                    httpx.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.ConnectError:
                    assert process.poll() is None
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            query = {"query": '{ customersV3(company: "USMF") { totalCount } }'}
            url = f"http://127.0.0.1:{port}/graphql"
            assert httpx.post(url, json=query).json()["errors"][0]["extensions"]["code"] == (
                "UNAUTHENTICATED"
            )
            if admin_key is None:  # first start: sign a token with the data folder's secret
                secret = (data / "jwt-secret").read_text().strip()
                claims = {"sub": "x", "roles": ["reader"], "iss": "fno-gateway", "exp": 2**32}
                token = jwt.encode(claims, secret, algorithm="HS256")
            else:  # the admin key printed on first start still works after a restart
                token = admin_key
            headers = {"Authorization": f"Bearer {token}"}
            response = httpx.post(url, json=query, headers=headers)
            assert response.json() == {"data": {"customersV3": {"totalCount": expected}}}
        finally:
            process.terminate()
            output = process.communicate(timeout=20)[0]
        assert f"GraphiQL at http://127.0.0.1:{port}/graphql" in output
        printed = [line.strip() for line in output.splitlines() if line.strip().startswith("fgk_")]
        if attempt == 0:
            assert "An admin API key for admin@contoso.com" in output and len(printed) == 1
            admin_key = printed[0]
        else:
            assert printed == []  # shown once only
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


def test_check_says_what_is_wrong_and_fails(
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", "")  # put back as it was: --config sets it
    data = ["--data-dir", str(tmp_path)]
    assert main(["demo", "--scale", "0.02", *data]) == 0
    capsys.readouterr()
    assert main(["check", *data]) == 0
    out = capsys.readouterr().out
    assert "ok  F&O store" in out and "answers" in out and "BAD" not in out

    unreachable = "postgresql://nobody@127.0.0.1:1/x"
    assert main(["check", *data, "--fno-url", unreachable]) == 1
    out = capsys.readouterr().out
    assert "BAD F&O store: postgresql://nobody@127.0.0.1:1/x does not answer" in out
    assert "ok  control store" in out

    config = tmp_path / "gateway.toml"
    config.write_text('port = "eighty"\nanonymus_reads = true\n')
    assert main(["--config", str(config), "check", *data]) == 1
    out = capsys.readouterr().out
    assert "unknown settings anonymus_reads" in out
    assert "BAD GATEWAY_PORT / port: Input should be a valid integer" in out


def test_a_toml_file_sits_under_the_environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        'port = 9100\nmax_page_size = 500\ncors_origins = ["https://app.contoso.com"]\n'
    )
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    monkeypatch.setenv("GATEWAY_PORT", "9200")
    settings = Settings()
    assert settings.port == 9200  # the environment wins
    assert settings.max_page_size == 500 and settings.cors_origins == ["https://app.contoso.com"]
    assert main(["settings"]) == 0
    listing = capsys.readouterr().out
    for name in Settings.model_fields:
        assert f"GATEWAY_{name.upper()}  (TOML: {name}," in listing


def test_schema_prints_the_sdl_and_the_introspection_for_codegen(
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("GATEWAY_DEMO_SCALE", "0.02")
    data = ["--data-dir", str(tmp_path)]
    assert main(["schema", *data]) == 0
    sdl = capsys.readouterr().out
    assert "type Query {" in sdl and "customersV3(" in sdl
    assert main(["schema", "--json", *data]) == 0
    introspection = json.loads(capsys.readouterr().out)
    client_schema = build_client_schema(introspection["data"])
    assert client_schema.query_type is not None
    assert "customersV3" in client_schema.query_type.fields
    same = [print_schema(lexicographic_sort_schema(s)) for s in (client_schema, build_schema(sdl))]
    assert same[0] == same[1]
