"""The physical limit: the gateway's own SQL, run by asyncpg, its JSON returned by a bare
ASGI handler with no GraphQL at all.

    python bench/bare.py STATEMENTS.json PORT   (started by read_bench.py)

STATEMENTS.json maps a path ("/a") to [sql, [parameters]]; each request runs that
statement on a pooled connection and returns its single JSON text value.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import asyncpg
import uvicorn

STATEMENTS: dict[str, tuple[str, list[Any]]] = {}
POOL: list[Any] = []


async def no_reset(_conn: Any) -> None:
    """One autocommit statement per checkout leaves nothing to reset (as in the gateway)."""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                POOL.append(
                    await asyncpg.create_pool(
                        os.environ["BARE_DSN"], min_size=4, max_size=10, reset=no_reset
                    )
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await POOL[0].close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    sql, params = STATEMENTS[scope["path"]]
    while (await receive()).get("more_body"):
        pass
    async with POOL[0].acquire() as conn:
        text = await conn.fetchval(sql, *params)
    body = b'{"data":{"q":' + text.encode() + b"}}"
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    with open(sys.argv[1]) as file:
        STATEMENTS.update({path: (sql, params) for path, (sql, params) in json.load(file).items()})
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
