"""Durable idempotency through the plain function API, on a real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from harness.sdk import applied, until_lock_waiter
from sagaz_participant import Answer, Idempotency, InvalidKeyError, Source, connection
from sagaz_participant.schema import Connection

pytestmark = pytest.mark.postgres

KEY = "3f2a-uid/charge/action"


def writer(table: str, what: str, answer: Answer, runs: list[str]):  # type: ignore[no-untyped-def]
    async def handler(conn: Connection) -> Answer:
        runs.append(what)
        await conn.execute(f"INSERT INTO {table} VALUES ($1, $2)", KEY, what)
        return answer

    return handler


async def test_the_first_answer_is_stored_with_the_writes_and_replayed(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    runs: list[str] = []
    first = await idempotency.run(
        KEY, writer(writes, "charged", Answer.json({"paymentId": "p-1"}, status=201), runs)
    )
    again = await idempotency.run(
        KEY, writer(writes, "charged twice", Answer.json({"paymentId": "p-2"}), runs)
    )

    assert (first.source, first.answer.status, first.answer.value()) == (
        Source.HANDLER,
        201,
        {"paymentId": "p-1"},
    )
    assert (again.source, again.answer.status, again.answer.value()) == (
        Source.STORED,
        201,
        {"paymentId": "p-1"},
    )
    assert again.answer.headers == (("content-type", "application/json"),)
    assert runs == ["charged"]
    assert await applied(pool, writes) == [(KEY, "charged")]


async def test_a_refusal_is_final_and_stored(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    runs: list[str] = []
    declined = Answer.json({"error": "card declined"}, status=402)
    await idempotency.run(KEY, writer(writes, "declined", declined, runs))
    again = await idempotency.run(KEY, writer(writes, "charged", Answer.json({}), runs))

    assert (again.source, again.answer.status) == (Source.STORED, 402)
    assert runs == ["declined"]


@pytest.mark.parametrize("status", [500, 503, 408, 425, 429])
async def test_an_answer_the_operator_retries_is_not_stored_and_its_writes_roll_back(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str, status: int
) -> None:
    runs: list[str] = []
    busy = await idempotency.run(KEY, writer(writes, "half", Answer(status=status), runs))
    assert (busy.answer.status, busy.stored) == (status, False)
    assert await applied(pool, writes) == []

    retry = await idempotency.run(KEY, writer(writes, "whole", Answer.json({}), runs))
    assert (retry.source, retry.answer.status) == (Source.HANDLER, 200)
    assert runs == ["half", "whole"]
    assert await applied(pool, writes) == [(KEY, "whole")]


async def test_a_crash_inside_the_transaction_applies_nothing(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    async def crashes(conn: Connection) -> Answer:
        await conn.execute(f"INSERT INTO {writes} VALUES ($1, 'lost')", KEY)
        raise RuntimeError("the process dies between its writes and the commit")

    with pytest.raises(RuntimeError):
        await idempotency.run(KEY, crashes)
    assert await applied(pool, writes) == []
    assert await pool.fetchval(f"SELECT count(*) FROM {idempotency.table}") == 0

    runs: list[str] = []
    retry = await idempotency.run(KEY, writer(writes, "applied", Answer.json({}), runs))
    assert retry.source is Source.HANDLER
    assert await applied(pool, writes) == [(KEY, "applied")]


async def test_a_concurrent_duplicate_waits_for_the_first_and_gets_its_answer(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    release = asyncio.Event()
    runs = 0

    async def slow(conn: Connection) -> Answer:
        nonlocal runs
        runs += 1
        await conn.execute(f"INSERT INTO {writes} VALUES ($1, $2)", KEY, f"run {runs}")
        await release.wait()
        return Answer.json({"run": runs})

    first = asyncio.create_task(idempotency.run(KEY, slow))
    second = asyncio.create_task(idempotency.run(KEY, slow))
    try:
        await until_lock_waiter(pool)  # the duplicate is queued on the key's lock
    finally:
        release.set()
    one, two = await asyncio.gather(first, second)

    assert runs == 1
    assert {one.source, two.source} == {Source.HANDLER, Source.STORED}
    assert one.answer == two.answer
    assert await applied(pool, writes) == [(KEY, "run 1")]


async def test_many_concurrent_duplicates_run_the_handler_once(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    runs: list[str] = []
    results = await asyncio.gather(
        *(
            idempotency.run(KEY, writer(writes, f"try {n}", Answer.json({"n": n}), runs))
            for n in range(8)
        )
    )

    assert len(runs) == 1
    assert len({r.answer for r in results}) == 1
    assert await applied(pool, writes) == [(KEY, runs[0])]


async def test_connection_is_the_transaction_of_the_request(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    async def handler(conn: Connection) -> Answer:
        assert connection() is conn
        await connection().execute(f"INSERT INTO {writes} VALUES ($1, 'via connection()')", KEY)
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await idempotency.run(KEY, handler)
    assert await applied(pool, writes) == []


@pytest.mark.parametrize("key", ["", "x" * 513, "tab\there"])
async def test_an_unusable_key_is_refused_before_anything_runs(
    idempotency: Idempotency, key: str
) -> None:
    async def never(conn: Connection) -> Answer:
        raise AssertionError("must not run")

    with pytest.raises(InvalidKeyError):
        await idempotency.run(key, never)
