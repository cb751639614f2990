"""A compensation that arrives before its action (or for an action never applied)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from harness.sdk import applied, until_lock_waiter
from sagaz_participant import Answer, Idempotency, Source
from sagaz_participant.schema import Connection

pytestmark = pytest.mark.postgres

ACTION = "9c1e-uid/book-hotel/action"
COMPENSATION = "9c1e-uid/book-hotel/compensation"


class Participant:
    """Books and cancels a hotel room, recording what it did in ``table``."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.runs: list[str] = []

    async def book(self, conn: Connection) -> Answer:
        self.runs.append("book")
        await conn.execute(f"INSERT INTO {self.table} VALUES ($1, 'booked')", ACTION)
        return Answer.json({"booking": "B-1"})

    async def cancel(self, conn: Connection) -> Answer:
        self.runs.append("cancel")
        booked = await conn.fetchval(f"SELECT count(*) FROM {self.table} WHERE what = 'booked'")
        await conn.execute(f"INSERT INTO {self.table} VALUES ($1, 'cancelled')", COMPENSATION)
        return Answer.json({"cancelled": booked})


async def test_a_compensation_first_succeeds_and_the_late_action_is_refused(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    hotel = Participant(writes)

    undo = await idempotency.run(COMPENSATION, hotel.cancel)
    late = await idempotency.run(ACTION, hotel.book)

    assert (undo.source, undo.answer.status) == (Source.NOTHING_TO_UNDO, 200)
    assert undo.answer.value()["compensated"] is False
    assert (late.source, late.answer.status) == (Source.CANCELLED, 409)
    assert late.answer.value()["error"] == "cancelled"
    assert "arrived before this action" in late.answer.value()["message"]
    assert hotel.runs == []
    assert await applied(pool, writes) == []


async def test_repeats_of_both_keep_their_answers(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    hotel = Participant(writes)
    await idempotency.run(COMPENSATION, hotel.cancel)
    await idempotency.run(ACTION, hotel.book)

    undo = await idempotency.run(COMPENSATION, hotel.cancel)
    late = await idempotency.run(ACTION, hotel.book)

    assert (undo.source, undo.answer.status) == (Source.STORED, 200)
    assert (late.source, late.answer.status) == (Source.CANCELLED, 409)
    assert hotel.runs == []


async def test_a_compensation_after_its_action_runs_and_undoes_it(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    hotel = Participant(writes)
    await idempotency.run(ACTION, hotel.book)

    undo = await idempotency.run(COMPENSATION, hotel.cancel)

    assert (undo.source, undo.answer.value()) == (Source.HANDLER, {"cancelled": 1})
    assert hotel.runs == ["book", "cancel"]


async def test_a_compensation_of_a_refused_action_has_nothing_to_undo(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    hotel = Participant(writes)

    async def full(conn: Connection) -> Answer:
        return Answer.json({"error": "no room"}, status=409)

    await idempotency.run(ACTION, full)
    undo = await idempotency.run(COMPENSATION, hotel.cancel)

    assert (undo.source, undo.answer.status) == (Source.NOTHING_TO_UNDO, 200)
    assert hotel.runs == []


async def test_a_compensation_waits_for_its_action_in_flight_then_undoes_it(
    idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    """The slow action is not cancelled under its feet: the undo waits for it and sees it."""
    hotel = Participant(writes)
    release = asyncio.Event()

    started = asyncio.Event()

    async def slow_book(conn: Connection) -> Answer:
        answer = await hotel.book(conn)
        started.set()
        await release.wait()
        return answer

    action = asyncio.create_task(idempotency.run(ACTION, slow_book))
    async with asyncio.timeout(30):
        await started.wait()
    undo = asyncio.create_task(idempotency.run(COMPENSATION, hotel.cancel))
    try:
        await until_lock_waiter(pool)
    finally:
        release.set()
    booked, undone = await asyncio.gather(action, undo)

    assert booked.answer.status == 200
    assert (undone.source, undone.answer.value()) == (Source.HANDLER, {"cancelled": 1})
    assert hotel.runs == ["book", "cancel"]


async def test_keys_of_other_shapes_are_only_deduplicated(
    idempotency: Idempotency, writes: str
) -> None:
    hotel = Participant(writes)

    first = await idempotency.run("order-17/compensation", hotel.cancel)

    assert first.source is Source.HANDLER
    assert hotel.runs == ["cancel"]
