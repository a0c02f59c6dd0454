"""`fno-gateway`: serve the gateway, build a demo store, issue tokens, print the schema."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
from tqdm import tqdm

from gateway import logs
from gateway.auth import Role
from gateway.kernel.errors import GatewayError
from gateway.settings import CONFIG, Settings, describe_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fno-gateway", description=__doc__)
    parser.add_argument(
        "--config", help=f"a TOML file of settings, under the environment's ({CONFIG})"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway (GraphiQL at /graphql)")
    serve.add_argument("--host", help="interface (GATEWAY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (GATEWAY_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (GATEWAY_WORKERS)")
    _store_flags(serve)

    demo = commands.add_parser("demo", help="build a demo F&O store (for benchmarks: --scale 100)")
    demo.add_argument("--scale", type=float, default=1.0, help="1 = 1,000 customers, ~10,000 lines")
    _store_flags(demo)

    token = commands.add_parser("token", help="API keys and signed tokens")
    tokens = token.add_subparsers(dest="token_command", required=True)
    create = tokens.add_parser("create", help="create an API key (printed once, stored hashed)")
    jwt_token = tokens.add_parser("jwt", help="print a JWT signed with the gateway's secret")
    for sub in (create, jwt_token):
        sub.add_argument("--sub", default="admin", help="who it names (a user's email)")
        sub.add_argument(
            "--role", action="append", choices=[r.value for r in Role], help="repeatable"
        )
        sub.add_argument(
            "--company",
            action="append",
            help="a legal entity it may read (repeatable; default: all)",
        )
        _store_flags(sub)
    create.add_argument("--description", default="", help="what the key is for")
    jwt_token.add_argument("--hours", type=float, default=12.0, help="lifetime")
    listing = tokens.add_parser("list", help="list API keys")
    revoke = tokens.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("id", help="the key's id (see `token list`)")
    for sub in (listing, revoke):
        _store_flags(sub)

    schema = commands.add_parser("schema", help="print the GraphQL schema (SDL) as served now")
    schema.add_argument(
        "--json", action="store_true", help="the introspection result instead (for codegen)"
    )
    _store_flags(schema)

    check = commands.add_parser(
        "check", help="check the configuration and that every store answers (exit 1 if not)"
    )
    _store_flags(check)
    commands.add_parser("settings", help="list every setting, its default and what it does")
    migrate = commands.add_parser(
        "migrate", help="bring the control store's schema to this release's revision"
    )
    _store_flags(migrate)

    args = parser.parse_args(argv)
    if args.config:
        os.environ[CONFIG] = args.config  # workers read it too
    if args.command == "settings":
        print(describe_settings())
        return 0
    if args.command == "check":
        return asyncio.run(_check(args))
    settings = _settings(args)
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "serve":
        return _serve(settings)
    if args.command == "demo":
        return asyncio.run(_demo(settings, args.scale))
    if args.command == "token":
        return asyncio.run(_token(settings, args))
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    return asyncio.run(_schema(settings, args.json))


def _store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", help="data folder (GATEWAY_DATA_DIR, default ./fno-gateway-data)"
    )
    parser.add_argument("--fno-url", help="F&O store URL (GATEWAY_FNO_URL)")
    parser.add_argument("--control-url", help="control store URL (GATEWAY_CONTROL_URL)")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(**_overrides(args))


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "workers", "data_dir", "fno_url", "control_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return overrides


async def _check(args: argparse.Namespace) -> int:
    from gateway import check

    settings, findings = check.configuration(_overrides(args))
    if settings is not None:
        findings += await check.stores(settings)
    for finding in findings:
        print(finding)
    return 0 if all(f.ok for f in findings) else 1


def _serve(settings: Settings) -> int:
    if settings.workers > 1:
        # Prepare the stores once, so workers never race to create them.
        asyncio.run(_prepare(settings))
        for name, value in settings.model_dump(exclude_none=True).items():
            if name != "jwt_secret":  # workers read the secret where this process did
                os.environ[f"GATEWAY_{name.upper()}"] = str(value)
        uvicorn.run(
            "gateway.app:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            ws_per_message_deflate=settings.ws_compression,
            timeout_graceful_shutdown=settings.shutdown_seconds,
            log_config=None,  # see gateway.logs
        )
        return 0
    from gateway.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_per_message_deflate=settings.ws_compression,
        timeout_graceful_shutdown=settings.shutdown_seconds,
        log_config=None,  # see gateway.logs
    )
    return 0


async def _prepare(settings: Settings) -> None:
    from gateway.runtime import Runtime

    runtime = await Runtime.open(settings)
    await runtime.close()


async def _demo(settings: Settings, scale: float) -> int:
    from sqlalchemy import inspect as sa_inspect
    from sqlalchemy.engine import make_url

    from datasources.fno_demo.generate import build_demo_store, expected_rows
    from datasources.sql.engine import create_engine

    if settings.fno_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.store_url("fno"))
    try:
        async with engine.connect() as conn:
            if await conn.run_sync(lambda c: sa_inspect(c).has_table("sysdataentity")):
                print(
                    "the F&O store is not empty; point --fno-url at an empty database",
                    file=sys.stderr,
                )
                return 1
        with tqdm(
            total=expected_rows(scale), unit=" rows", unit_scale=True, desc="demo store"
        ) as bar:
            written = await build_demo_store(engine, scale, bar.update)  # type: ignore[arg-type]
        print(f"wrote {written:,} rows to {make_url(settings.store_url('fno'))!r}")
        return 0
    finally:
        await engine.dispose()


async def _migrate(settings: Settings) -> int:
    from sqlalchemy.engine import make_url

    from datasources.sql.engine import create_engine
    from gateway import control

    if settings.control_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.store_url("control"))
    try:
        before = await control.revision(engine)
        await control.migrate(engine)
        shown = make_url(settings.store_url("control")).render_as_string(hide_password=True)
        print(f"{shown}: revision {before or '(none)'} -> {await control.revision(engine)}")
        return 0
    finally:
        await engine.dispose()


async def _token(settings: Settings, args: argparse.Namespace) -> int:
    from datasources.sql.engine import create_engine
    from gateway.auth import Authenticator
    from gateway.control import migrate

    if settings.control_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.store_url("control"))
    try:
        auth = Authenticator(engine, settings.token_secret(), settings.anonymous_reads)
        command = args.token_command
        roles = [Role(r) for r in (getattr(args, "role", None) or ["admin"])]
        if command == "jwt":
            print(auth.issue(args.sub, roles, dt.timedelta(hours=args.hours), args.company))
            return 0
        await migrate(engine)
        if command == "create":
            key, secret = await auth.create_key(args.sub, roles, args.company, args.description)
            print(secret)
            print(
                f"API key {key.id} for {key.subject} ({', '.join(sorted(key.roles))}): "
                "shown this once",
                file=sys.stderr,
            )
        elif command == "list":
            for key in await auth.keys():
                state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                print(
                    f"{key.id}  {key.subject}  {','.join(sorted(key.roles))}  {state}  "
                    f"{key.description}"
                )
        else:
            key = await auth.revoke_key(args.id)
            print(f"revoked {key.id} ({key.subject})")
        return 0
    except GatewayError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    finally:
        await engine.dispose()


async def _schema(settings: Settings, introspection: bool) -> int:
    import orjson
    from graphql import introspection_from_schema

    from gateway.runtime import Runtime

    runtime = await Runtime.open(settings)
    try:
        schema = runtime.schemas.current
        assert schema is not None
        if introspection:
            result = {"data": introspection_from_schema(schema._schema)}
            print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        else:
            print(schema.as_str())
        return 0
    finally:
        await runtime.close()


if __name__ == "__main__":
    sys.exit(main())
