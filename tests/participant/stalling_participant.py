"""A participant process for the crash tests: ``POST /apply`` writes a row through the SDK;
with ``{"stall": true}`` it prints ``WROTE`` once the write is done and then never commits,
so the test can ``kill -9`` it between the handler's writes and the commit.

    python stalling_participant.py DSN IDEMPOTENCY_TABLE WRITES_TABLE PORT
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg
from aiohttp import web

from sagaz_participant import Idempotency, aiohttp_web, connection


async def main(dsn: str, table: str, writes: str, port: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    idempotency = Idempotency(pool, table=table)

    async def apply(request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers["Idempotency-Key"]
        await connection().execute(f"INSERT INTO {writes} VALUES ($1, 'applied')", key)
        if body.get("stall"):
            print("WROTE", flush=True)
            await asyncio.Event().wait()
        return web.json_response({"applied": key})

    app = web.Application(middlewares=[aiohttp_web.middleware(idempotency)])
    app.router.add_post("/apply", apply)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("LISTENING", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
