"""Flight, hotel, car, payment and e-mail participants for the travel-booking saga, as one
process built on sagaz_participant.

    python examples/travel-booking/travel.py --port 18082      (database: $SAGAZ_DATABASE_URL)
    python examples/travel-booking/travel.py --show             print the bookings and e-mails

- ``POST /{flights,hotels,cars}/book``  ``{"trip", "traveller", "what"}`` -> ``{"bookingId"}``;
  the hotel ``Overbooked Inn`` has no room (409), which is how the failing variant fails.
  Hotels take ``--hotel-seconds`` to answer, so the flight and car are booked by then.
- ``POST /{flights,hotels,cars}/cancel`` ``{"trip"}``: cancels that trip's booking; takes
  ``--cancel-seconds``, so the parallel compensations are visible as overlapping intervals.
- ``POST /payments/charge`` ``{"trip", "amount"}``: the saga's Pivot (no undo).
- ``POST /emails/send`` ``{"trip", "to"}``: answers 503 ``--email-failures`` times per trip
  first (a flaky mail relay), then sends, once.

``--slow-flights SECONDS`` holds every flight booking that long *before* it reaches the SDK
(a congested network, a queue): with a shorter attempt timeout the operator gives up on it
and cancels it, the cancellation overtakes the booking, and the late booking is refused.

Compensations name the booking by the trip (the saga uid), not by the action's output: the
SDK may have to cancel an action whose answer never reached the operator, and then there is
no output to name it by.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from collections import Counter
from typing import Any

import asyncpg
from aiohttp import web

from sagaz_participant import Idempotency, aiohttp_web, connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS travel_bookings (
    trip            text NOT NULL,
    kind            text NOT NULL,
    booking         text NOT NULL,
    what            text NOT NULL,
    state           text NOT NULL,
    booked_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    cancel_started  timestamptz,
    cancel_finished timestamptz,
    PRIMARY KEY (trip, kind)
);
CREATE TABLE IF NOT EXISTS travel_payments (trip text PRIMARY KEY, amount numeric NOT NULL);
CREATE TABLE IF NOT EXISTS travel_emails (
    trip text PRIMARY KEY, recipient text NOT NULL, sent_at timestamptz NOT NULL DEFAULT now()
);
"""
FULL_HOTELS = {"Overbooked Inn"}


class Travel:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.email_tries: Counter[str] = Counter()

    async def book(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        body = await request.json()
        if kind == "hotels":
            await asyncio.sleep(self.args.hotel_seconds)
            if body["what"] in FULL_HOTELS:
                return web.json_response(
                    {"error": "no-rooms", "message": f"{body['what']} is fully booked"}, status=409
                )
        booking = f"{kind[:2].upper()}-{uuid.uuid4().hex[:6]}"
        await connection().execute(
            "INSERT INTO travel_bookings (trip, kind, booking, what, state)"
            " VALUES ($1, $2, $3, $4, 'booked')",
            body["trip"],
            kind,
            booking,
            body["what"],
        )
        return web.json_response({"bookingId": booking, "what": body["what"]})

    async def cancel(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        trip = (await request.json())["trip"]
        conn = connection()
        await conn.execute(
            "UPDATE travel_bookings SET cancel_started = clock_timestamp()"
            " WHERE trip = $1 AND kind = $2",
            trip,
            kind,
        )
        await asyncio.sleep(self.args.cancel_seconds)
        booking = await conn.fetchval(
            "UPDATE travel_bookings SET state = 'cancelled', cancel_finished = clock_timestamp()"
            " WHERE trip = $1 AND kind = $2 RETURNING booking",
            trip,
            kind,
        )
        return web.json_response({"cancelled": booking})

    async def charge(self, request: web.Request) -> web.Response:
        body = await request.json()
        await connection().execute(
            "INSERT INTO travel_payments VALUES ($1, $2)", body["trip"], body["amount"]
        )
        return web.json_response({"paymentId": f"PAY-{uuid.uuid4().hex[:6]}"})

    async def send_email(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.email_tries[body["trip"]] += 1
        if self.email_tries[body["trip"]] <= self.args.email_failures:
            return web.json_response({"error": "mail relay unavailable"}, status=503)
        await connection().execute(
            "INSERT INTO travel_emails (trip, recipient) VALUES ($1, $2)", body["trip"], body["to"]
        )
        return web.json_response({"sent": body["to"]})


@web.middleware
async def access_log(request: web.Request, handler: Any) -> web.StreamResponse:
    answer: web.StreamResponse = await handler(request)
    replayed = " (replayed)" if answer.headers.get("Idempotent-Replayed") else ""
    key = request.headers.get("Idempotency-Key", "-")
    print(f"travel: {request.path} {key} -> {answer.status}{replayed}", flush=True)
    return answer


def slow_flights(seconds: float) -> Any:
    @web.middleware
    async def delay(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/flights/book":
            await asyncio.sleep(seconds)
        answer: web.StreamResponse = await handler(request)
        return answer

    return delay


async def serve(args: argparse.Namespace) -> None:
    pool = await asyncpg.create_pool(args.database_url, min_size=2, max_size=20)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('travel-schema'))")
        await conn.execute(SCHEMA)
    idempotency = Idempotency(pool, table="travel_idempotency")
    await idempotency.install()
    travel = Travel(args)
    middlewares = [access_log]
    if args.slow_flights:
        middlewares.append(slow_flights(args.slow_flights))
    middlewares.append(aiohttp_web.middleware(idempotency, require_key=True))
    app = web.Application(middlewares=middlewares)
    app.router.add_post("/{kind:flights|hotels|cars}/book", travel.book)
    app.router.add_post("/{kind:flights|hotels|cars}/cancel", travel.cancel)
    app.router.add_post("/payments/charge", travel.charge)
    app.router.add_post("/emails/send", travel.send_email)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    print(f"travel: listening on {args.host}:{args.port}", flush=True)
    await asyncio.Event().wait()


async def show(args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(args.database_url)
    try:
        for row in await conn.fetch("SELECT * FROM travel_bookings ORDER BY booked_at"):
            when = ""
            if row["cancel_started"] and row["cancel_finished"]:
                start, end = row["cancel_started"], row["cancel_finished"]
                when = f" from {start:%H:%M:%S.%f}"[:-3] + f" to {end:%H:%M:%S.%f}"[:-3]
            print(f"  {row['trip'][:8]}  {row['kind']:<8} {row['what']:<20} {row['state']}{when}")
        for row in await conn.fetch("SELECT * FROM travel_emails ORDER BY sent_at"):
            print(f"  {row['trip'][:8]}  e-mail to {row['recipient']}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("SAGAZ_DATABASE_URL"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18082)
    parser.add_argument("--hotel-seconds", type=float, default=0.5)
    parser.add_argument("--cancel-seconds", type=float, default=1.5)
    parser.add_argument("--email-failures", type=int, default=2)
    parser.add_argument("--slow-flights", type=float, default=0.0)
    parser.add_argument("--show", action="store_true", help="print the bookings and e-mails")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("no database: pass --database-url or set SAGAZ_DATABASE_URL")
    asyncio.run(show(args) if args.show else serve(args))


if __name__ == "__main__":
    main()
