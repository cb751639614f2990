"""A toy shop for the demo: inventory, payments and shipping as one HTTP participant.

    python examples/shop.py --port 18080          (database: --database-url or $SAGAZ_DATABASE_URL)

Built on ``sagaz_participant`` (participant/): every request must carry an
``Idempotency-Key``, and the shop's records and its answer commit in one PostgreSQL
transaction, so a retried request is applied once and answered the same, also after the shop
restarts. Payments decline amounts over 1000 with HTTP 402, so ``saga-declined.yaml`` shows a
compensation. ``POST /admin/outage {"path": ..., "down": true}`` makes an endpoint answer 503
until it is posted again with ``"down": false`` (the demo uses it to show ``kubectl sagaz
retry``); a 503 is not stored, so the retry after the outage is applied. It is a stand-in for
your services, not part of the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from sagaz_participant import Idempotency, aiohttp_web, connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS shop_records (
    ref      text PRIMARY KEY,           -- reservation, payment or parcel id
    kind     text NOT NULL,
    order_id text,
    state    text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
"""


async def record(ref: str, kind: str, order_id: Any, state: str) -> None:
    await connection().execute(
        "INSERT INTO shop_records (ref, kind, order_id, state) VALUES ($1, $2, $3, $4)",
        ref,
        kind,
        None if order_id is None else str(order_id),
        state,
    )


async def settle(ref: Any, state: str) -> None:
    await connection().execute("UPDATE shop_records SET state = $2 WHERE ref = $1", str(ref), state)


async def reserve(body: dict[str, Any]) -> web.Response:
    reservation = f"res-{uuid.uuid4().hex[:8]}"
    await record(reservation, "reservation", body.get("orderId"), "held")
    return web.json_response({"reservationId": reservation, "items": body.get("items")})


async def release(body: dict[str, Any]) -> web.Response:
    await settle(body.get("reservationId"), "released")
    return web.json_response({"released": body.get("reservationId")})


async def charge(body: dict[str, Any]) -> web.Response:
    amount = float(body.get("amount") or 0)
    if amount > 1000:
        return web.json_response({"error": f"card declined for amount {amount}"}, status=402)
    payment = f"pay-{uuid.uuid4().hex[:8]}"
    await record(payment, "payment", body.get("orderId"), "charged")
    return web.json_response({"paymentId": payment, "amount": amount})


async def refund(body: dict[str, Any]) -> web.Response:
    await settle(body.get("paymentId"), "refunded")
    return web.json_response({"refunded": body.get("paymentId")})


async def ship(body: dict[str, Any]) -> web.Response:
    tracking = f"TRK{uuid.uuid4().int % 10**8:08d}"
    await record(tracking, "parcel", body.get("orderId"), "shipped")
    return web.json_response({"trackingNumber": tracking})


ROUTES = {
    "/inventory/reserve": reserve,
    "/inventory/release": release,
    "/payments/charge": charge,
    "/payments/refund": refund,
    "/shipping/ship": ship,
}


def route(endpoint: Any) -> Any:
    async def handle(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        response: web.Response = await endpoint(body if isinstance(body, dict) else {})
        return response

    return handle


#: Endpoints made to answer 503 through ``POST /admin/outage``.
outages: set[str] = set()


@web.middleware
async def outage(request: web.Request, handler: Any) -> web.StreamResponse:
    """``/admin/outage`` switches an endpoint off or on; an endpoint that is off answers 503
    before the idempotency layer sees the request, so nothing is stored for its key."""
    if request.path == "/admin/outage":
        body = await request.json() if request.can_read_body else {}
        target = str(body.get("path")) if isinstance(body, dict) else ""
        (outages.add if isinstance(body, dict) and body.get("down") else outages.discard)(target)
        return web.json_response({"down": sorted(outages)})
    if request.path in outages:
        return web.json_response({"error": f"{request.path} is down for maintenance"}, status=503)
    answer: web.StreamResponse = await handler(request)
    return answer


@web.middleware
async def access_log(request: web.Request, handler: Any) -> web.StreamResponse:
    answer: web.StreamResponse = await handler(request)
    replayed = " (replayed)" if answer.headers.get("Idempotent-Replayed") else ""
    print(f"shop: {request.method} {request.path} -> {answer.status}{replayed}", flush=True)
    return answer


async def serve(args: argparse.Namespace) -> None:
    pool = await asyncpg.create_pool(args.database_url, min_size=1, max_size=20)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('shop-schema'))")
        await conn.execute(SCHEMA)
    idempotency = Idempotency(pool, table="shop_idempotency")
    await idempotency.install()
    app = web.Application(
        middlewares=[access_log, outage, aiohttp_web.middleware(idempotency, require_key=True)]
    )
    for path, endpoint in ROUTES.items():
        app.router.add_post(path, route(endpoint))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    print(f"shop: listening on {args.host}:{args.port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--database-url", default=os.environ.get("SAGAZ_DATABASE_URL"))
    args = parser.parse_args()
    if not args.database_url:
        parser.error("no database: pass --database-url or set SAGAZ_DATABASE_URL")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
