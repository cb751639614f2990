"""The ASGI adapter with a raw ASGI application and with Starlette, through httpx's ASGI
transport (the application runs in the test's loop; the database is real)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.sdk import applied
from sagaz_participant import Idempotency, connection
from sagaz_participant.asgi import IdempotencyMiddleware

pytestmark = pytest.mark.postgres

KEY = "a1b2-uid/reserve/action"


def raw_app(table: str, runs: list[str]) -> Any:
    """The smallest ASGI application that writes through the request's transaction."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        item = json.loads(message["body"])["item"]
        runs.append(item)
        await connection().execute(f"INSERT INTO {table} VALUES ($1, $2)", KEY, item)
        body = json.dumps({"reserved": item, "run": len(runs)}).encode()
        headers = [(b"content-type", b"application/json"), (b"x-reservation", item.encode())]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(app: Any) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_a_repeat_gets_the_stored_status_body_and_headers(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str, client_for: Any
) -> None:
    runs: list[str] = []
    client = client_for(IdempotencyMiddleware(raw_app(writes, runs), idempotency=idempotency))

    first = await client.post("/reserve", json={"item": "A1"}, headers={"Idempotency-Key": KEY})
    again = await client.post("/reserve", json={"item": "B2"}, headers={"Idempotency-Key": KEY})

    assert (first.status_code, first.json()) == (201, {"reserved": "A1", "run": 1})
    assert (again.status_code, again.json()) == (201, {"reserved": "A1", "run": 1})
    assert again.headers["x-reservation"] == "A1"
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert runs == ["A1"]
    assert await applied(pool, writes) == [(KEY, "A1")]


async def test_requests_without_a_key_pass_through_unless_one_is_required(
    idempotency: Idempotency, writes: str, client_for: Any
) -> None:
    runs: list[str] = []
    app = raw_app(writes, runs)

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        runs.append("plain")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    passing = client_for(IdempotencyMiddleware(plain, idempotency=idempotency))
    strict = client_for(IdempotencyMiddleware(app, idempotency=idempotency, require_key=True))

    assert (await passing.post("/x")).status_code == 204
    refused = await strict.post("/reserve", json={"item": "A1"})
    bad_key = await strict.post(
        "/reserve", json={"item": "A1"}, headers={"Idempotency-Key": "x" * 600}
    )
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid-idempotency-key")
    assert bad_key.status_code == 400
    assert runs == ["plain"]


def starlette_app(idempotency: Idempotency, table: str, runs: list[str]) -> Starlette:
    async def charge(request: Request) -> JSONResponse:
        amount = (await request.json())["amount"]
        runs.append(str(amount))
        if amount > 1000:
            return JSONResponse({"error": "card declined"}, status_code=402)
        await connection().execute(f"INSERT INTO {table} VALUES ($1, $2)", KEY, str(amount))
        await asyncio.sleep(0.05)  # a slow participant: duplicates overlap
        return JSONResponse({"paymentId": f"pay-{len(runs)}"})

    return Starlette(
        routes=[Route("/charge", charge, methods=["POST"])],
        middleware=[Middleware(IdempotencyMiddleware, idempotency=idempotency)],
    )


async def test_starlette_concurrent_duplicates_charge_once(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str, client_for: Any
) -> None:
    runs: list[str] = []
    client = client_for(starlette_app(idempotency, writes, runs))

    answers = await asyncio.gather(
        *(
            client.post("/charge", json={"amount": 10}, headers={"Idempotency-Key": KEY})
            for _ in range(5)
        )
    )

    assert {a.json()["paymentId"] for a in answers} == {"pay-1"}
    assert runs == ["10"]
    assert await applied(pool, writes) == [(KEY, "10")]


async def test_starlette_a_refusal_is_replayed(
    idempotency: Idempotency, writes: str, client_for: Any
) -> None:
    runs: list[str] = []
    client = client_for(starlette_app(idempotency, writes, runs))
    key = {"Idempotency-Key": "a1b2-uid/charge/action"}

    first = await client.post("/charge", json={"amount": 5000}, headers=key)
    again = await client.post("/charge", json={"amount": 5}, headers=key)

    assert (first.status_code, again.status_code) == (402, 402)
    assert again.json() == {"error": "card declined"}
    assert runs == ["5000"]
