"""A bank participant for the money-transfer saga, built on sagaz_participant.

    python examples/money-transfer/bank.py serve --port 18081 --accounts alice=1000,bob=500
    python examples/money-transfer/bank.py balances
    python examples/money-transfer/bank.py reset --accounts alice=1000,bob=500

Accounts live in PostgreSQL (``--database-url``, default ``$SAGAZ_DATABASE_URL``). Money
never appears or vanishes: every request moves an amount between a customer's account and
the bank's ``in-transit`` account in one transaction, so the sum of all balances is the same
at every instant, in the middle of a transfer too:

- ``POST /debit``   customer -> in-transit (402 insufficient funds, 404 unknown account)
- ``POST /refund``  in-transit -> customer (the debit's compensation)
- ``POST /credit``  in-transit -> customer (404 unknown account)
- ``POST /reverse-credit``  customer -> in-transit (the credit's compensation; 409 if spent)

Each body is ``{"transfer": ..., "account": ..., "amount": <positive integer>}``. Every
request must carry an ``Idempotency-Key``: the SDK stores the answer with the move, so a
retried debit is applied once, and a refund that overtakes its debit cancels it.

``--faults RATE`` makes the bank misbehave on that share of requests, in three ways a real
network does: fail before doing anything (503), apply and then lose the answer (503 after
the commit), or answer late (after ``--slow-seconds``, beyond the saga's attempt timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
from typing import Any

import asyncpg
from aiohttp import web

from sagaz_participant import Idempotency, aiohttp_web, connection

TRANSIT = "in-transit"
SCHEMA = """
CREATE TABLE IF NOT EXISTS bank_accounts (
    id      text PRIMARY KEY,
    balance bigint NOT NULL CHECK (balance >= 0)
);
CREATE TABLE IF NOT EXISTS bank_entries (
    id       bigserial PRIMARY KEY,
    transfer text NOT NULL,
    kind     text NOT NULL,
    account  text NOT NULL,
    amount   bigint NOT NULL,  -- signed: what the account gained
    at       timestamptz NOT NULL DEFAULT now()
);
"""

logger = logging.getLogger("bank")


def refusal(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


async def move(request: web.Request, *, kind: str, to_customer: bool) -> web.Response:
    """Move the request's amount between its customer account and in-transit, atomically."""
    try:
        body = await request.json()
        transfer, account, amount = str(body["transfer"]), str(body["account"]), body["amount"]
    except (ValueError, KeyError, TypeError):
        return refusal(422, "bad-request", "expected JSON {transfer, account, amount}")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return refusal(422, "bad-amount", f"amount must be a positive integer, got {amount!r}")
    source, target = (TRANSIT, account) if to_customer else (account, TRANSIT)
    conn = connection()  # the request's transaction: the move commits with the stored answer
    rows = await conn.fetch(
        "SELECT id, balance FROM bank_accounts WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        [source, target],
    )
    balances = {row["id"]: row["balance"] for row in rows}
    if account not in balances or account == TRANSIT:
        return refusal(404, "unknown-account", f"there is no account {account!r}")
    if balances[source] < amount:
        if kind == "reverse-credit":
            return refusal(409, "already-spent", f"{account} no longer holds {amount}")
        return refusal(402, "insufficient-funds", f"{account} holds {balances[source]} < {amount}")
    await conn.executemany(
        "UPDATE bank_accounts SET balance = balance + $2 WHERE id = $1",
        [(source, -amount), (target, amount)],
    )
    await conn.executemany(
        "INSERT INTO bank_entries (transfer, kind, account, amount) VALUES ($1, $2, $3, $4)",
        [(transfer, kind, source, -amount), (transfer, kind, target, amount)],
    )
    balance = balances[account] + (amount if to_customer else -amount)
    return web.json_response({"transfer": transfer, "account": account, "balance": balance})


def faults(rate: float, slow_seconds: float, rng: random.Random) -> Any:
    """Misbehave on ``rate`` of the requests (outside the SDK, as a network would)."""

    @web.middleware
    async def faulty(request: web.Request, handler: Any) -> web.StreamResponse:
        roll = rng.random()
        if roll < rate / 3:
            return refusal(503, "injected-fault", "failed before applying anything")
        if roll < 2 * rate / 3:
            await handler(request)  # applied and committed; the answer is then lost
            return refusal(503, "injected-fault", "applied, but the answer was lost")
        if roll < rate:
            await asyncio.sleep(slow_seconds)  # the operator has given up on this attempt
        answer: web.StreamResponse = await handler(request)
        return answer

    return faulty


@web.middleware
async def access_log(request: web.Request, handler: Any) -> web.StreamResponse:
    answer: web.StreamResponse = await handler(request)
    replayed = " (replayed)" if answer.headers.get("Idempotent-Replayed") else ""
    key = request.headers.get("Idempotency-Key", "-")
    print(f"bank: {request.path} {key} -> {answer.status}{replayed}", flush=True)
    return answer


async def prepare(pool: asyncpg.Pool, accounts: str, *, reset: bool) -> Idempotency:
    """Create the tables and the missing accounts; ``reset`` empties everything first."""
    idempotency = Idempotency(pool, table="bank_idempotency")
    await idempotency.install()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('bank-schema'))")
        await conn.execute(SCHEMA)
        if reset:
            await conn.execute(f"TRUNCATE bank_accounts, bank_entries, {idempotency.table}")
        await conn.executemany(
            "INSERT INTO bank_accounts VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(TRANSIT, 0), *parse_accounts(accounts)],
        )
    return idempotency


async def reset(args: argparse.Namespace) -> None:
    async with asyncpg.create_pool(args.database_url, min_size=1, max_size=1) as pool:
        await prepare(pool, args.accounts, reset=True)


async def serve(args: argparse.Namespace) -> None:
    pool = await asyncpg.create_pool(args.database_url, min_size=2, max_size=20)
    idempotency = await prepare(pool, args.accounts, reset=False)

    middlewares = [access_log]
    if args.faults:
        middlewares.append(faults(args.faults, args.slow_seconds, random.Random(args.seed)))
    middlewares.append(aiohttp_web.middleware(idempotency, require_key=True))
    app = web.Application(middlewares=middlewares)
    for path, to_customer in [
        ("debit", False),
        ("refund", True),
        ("credit", True),
        ("reverse-credit", False),
    ]:

        async def route(request: web.Request, kind: str = path, to: bool = to_customer) -> Any:
            return await move(request, kind=kind, to_customer=to)

        app.router.add_post(f"/{path}", route)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    print(f"bank: listening on {args.host}:{args.port}", flush=True)
    await asyncio.Event().wait()


def parse_accounts(text: str) -> list[tuple[str, int]]:
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    return [(name, int(balance)) for name, balance in pairs]


async def balances(args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(args.database_url)
    try:
        rows = await conn.fetch("SELECT id, balance FROM bank_accounts ORDER BY id")
    finally:
        await conn.close()
    for row in rows:
        print(f"  {row['id']:<12} {row['balance']:>8}")
    print(f"  {'total':<12} {sum(r['balance'] for r in rows):>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("SAGAZ_DATABASE_URL"))
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the bank")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=18081)
    run.add_argument("--accounts", default="", help="name=balance,... created if missing")
    run.add_argument("--faults", type=float, default=0.0, help="share of requests to disturb")
    run.add_argument("--slow-seconds", type=float, default=4.0)
    run.add_argument("--seed", type=int, default=None)
    commands.add_parser("balances", help="print every account's balance and the total")
    fresh = commands.add_parser("reset", help="delete every account, entry and stored answer")
    fresh.add_argument("--accounts", default="", help="name=balance,... to create afresh")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("no database: pass --database-url or set SAGAZ_DATABASE_URL")
    logging.basicConfig(level=logging.WARNING)
    command = {"serve": serve, "balances": balances, "reset": reset}[args.command]
    asyncio.run(command(args))


if __name__ == "__main__":
    main()
