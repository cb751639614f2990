"""The aiohttp adapter on a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from harness import stack
from harness.sdk import applied
from sagaz_participant import Idempotency, connection
from sagaz_participant import aiohttp_web as sdk_aiohttp

pytestmark = pytest.mark.postgres

ACTION = "77aa-uid/debit/action"
COMPENSATION = "77aa-uid/debit/compensation"


@pytest.fixture
async def served(idempotency: Idempotency, writes: str) -> AsyncIterator[tuple[str, list[str]]]:
    runs: list[str] = []

    async def debit(request: web.Request) -> web.Response:
        amount = (await request.json())["amount"]
        runs.append(f"debit {amount}")
        if amount > 100:
            raise web.HTTPPaymentRequired(text="insufficient funds")
        await connection().execute(f"INSERT INTO {writes} VALUES ($1, $2)", ACTION, str(amount))
        await asyncio.sleep(0.05)
        return web.json_response({"debited": amount, "run": len(runs)})

    async def refund(request: web.Request) -> web.Response:
        runs.append("refund")
        await connection().execute(f"INSERT INTO {writes} VALUES ($1, 'refund')", COMPENSATION)
        return web.json_response({"refunded": True})

    app = web.Application(middlewares=[sdk_aiohttp.middleware(idempotency)])
    app.router.add_post("/debit", debit)
    app.router.add_post("/refund", refund)
    runner = web.AppRunner(app)
    await runner.setup()
    port = stack.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", runs
    finally:
        await runner.cleanup()


async def test_a_repeated_debit_is_applied_once(
    served: tuple[str, list[str]], pool: asyncpg.Pool, writes: str
) -> None:
    url, runs = served
    async with aiohttp.ClientSession() as session:

        async def post(amount: int) -> tuple[int, object, str | None]:
            async with session.post(
                f"{url}/debit", json={"amount": amount}, headers={"Idempotency-Key": ACTION}
            ) as answer:
                return answer.status, await answer.json(), answer.headers.get("Idempotent-Replayed")

        concurrent = await asyncio.gather(post(10), post(10), post(10))
        later = await post(20)

    assert {(status, str(body)) for status, body, _ in concurrent} == {
        (200, str({"debited": 10, "run": 1}))
    }
    assert sorted(replayed or "" for _, _, replayed in concurrent) == ["", "true", "true"]
    assert later[:2] == (200, {"debited": 10, "run": 1})
    assert runs == ["debit 10"]
    assert await applied(pool, writes) == [(ACTION, "10")]


async def test_a_raised_http_error_is_an_answer_and_is_stored(
    served: tuple[str, list[str]],
) -> None:
    url, runs = served
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.post(
                f"{url}/debit", json={"amount": 500}, headers={"Idempotency-Key": ACTION}
            ) as answer:
                assert (answer.status, await answer.text()) == (402, "insufficient funds")
    assert runs == ["debit 500"]


async def test_a_refund_before_its_debit_cancels_the_debit(
    served: tuple[str, list[str]], pool: asyncpg.Pool, writes: str
) -> None:
    url, runs = served
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/refund", json={}, headers={"Idempotency-Key": COMPENSATION}
        ) as undo:
            assert (undo.status, (await undo.json())["compensated"]) == (200, False)
        async with session.post(
            f"{url}/debit", json={"amount": 10}, headers={"Idempotency-Key": ACTION}
        ) as late:
            assert (late.status, (await late.json())["error"]) == (409, "cancelled")
    assert runs == []
    assert await applied(pool, writes) == []
