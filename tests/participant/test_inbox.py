"""The consumer inbox on the real Kafka and PostgreSQL: redeliveries, duplicates, poison."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sagaz_participant import Delivery, Event, Inbox
from sagaz_participant.schema import Connection

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


@pytest.fixture
def topic() -> str:
    return f"inbox-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def table() -> str:
    return f"inbox_{uuid.uuid4().hex[:10]}"


def record(event_id: str | None, saga: str, step: str) -> tuple[bytes, bytes, list[Any]]:
    headers = [("ce_type", b"StepSucceeded"), ("ce_source", b"/sagaz/test")]
    if event_id is not None:
        headers.insert(0, ("ce_id", event_id.encode()))
    return saga.encode(), json.dumps({"step": step}).encode(), headers


async def publish(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[Any]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


class Handled:
    """A handler that writes each event it handles to ``table``; ``poison`` ids always fail,
    ``flaky`` ids fail (after writing) that many times first."""

    def __init__(self, table: str, *, poison: set[str], flaky: dict[str, int]) -> None:
        self.table = table
        self.poison = poison
        self.flaky = flaky
        self.calls: list[str] = []

    async def __call__(self, conn: Connection, event: Event) -> None:
        self.calls.append(event.id)
        await conn.execute(
            f"INSERT INTO {self.table} VALUES ($1, $2)", event.id, event.json()["step"]
        )
        if event.id in self.poison:
            raise ValueError(f"cannot digest {event.id}")
        if self.flaky.get(event.id, 0) > 0:
            self.flaky[event.id] -= 1
            raise RuntimeError("crash after the writes, before the commit")


@pytest.fixture
async def written(pool: asyncpg.Pool) -> str:
    name = f"handled_{uuid.uuid4().hex[:10]}"
    await pool.execute(f"CREATE TABLE {name} (event_id text, step text)")
    return name


async def until(check: Callable[[], Any], *, within: float = 60) -> None:
    """Poll the database until ``check()`` is true: rows committed by another task are not an
    event this test can await."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - database state has no event to wait on
            await asyncio.sleep(0.05)


async def consume_until(
    inbox: Inbox, bootstrap: str, topic: str, group: str, handler: Any, done: Callable[[], Any]
) -> dict[TopicPartition, int]:
    """Run ``inbox.consume`` in a new consumer group until ``done()``; the offsets it committed."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    stop = asyncio.Event()
    running = asyncio.create_task(inbox.consume(consumer, handler, stop=stop))
    try:
        await until(done)
        stop.set()
        await running
        partitions = consumer.assignment()
        committed = {tp: await consumer.committed(tp) for tp in partitions}
        return {tp: offset for tp, offset in committed.items() if offset is not None}
    finally:
        running.cancel()
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return {tp: n for tp, n in ends.items() if n}
    finally:
        await consumer.stop()


async def test_each_event_is_handled_once_whatever_the_redeliveries(
    pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, table: str, written: str
) -> None:
    await publish(
        kafka_bootstrap,
        topic,
        [
            record("e-1", "saga-a", "reserve"),
            record("e-2", "saga-a", "charge"),
            record("e-2", "saga-a", "charge"),  # the relay's at-least-once: sent twice
            record("e-3", "saga-b", "reserve"),
            record("e-poison", "saga-b", "charge"),
            record(None, "saga-c", "reserve"),  # no ce_id: cannot be deduplicated
            record("e-4", "saga-b", "ship"),
        ],
    )
    inbox = Inbox(pool, consumer="printer", table=table, max_attempts=3, retry_seconds=0.01)
    await inbox.install()
    handler = Handled(written, poison={"e-poison"}, flaky={"e-3": 2})

    async def all_settled() -> bool:
        return await pool.fetchval(f"SELECT count(*) FROM {table}") == 6

    committed = await consume_until(inbox, kafka_bootstrap, topic, "group-1", handler, all_settled)

    rows = await pool.fetch(f"SELECT event_id, step FROM {written} ORDER BY event_id")
    assert [(r["event_id"], r["step"]) for r in rows] == [
        ("e-1", "reserve"),
        ("e-2", "charge"),
        ("e-3", "reserve"),
        ("e-4", "ship"),
    ]
    assert handler.calls.count("e-3") == 3  # two crashes rolled back, then applied once
    assert handler.calls.count("e-poison") == 3
    assert handler.calls.count("e-2") == 1
    dead = await pool.fetch(f"SELECT event_id, attempts, error FROM {table}_dead ORDER BY 1")
    assert (dead[0]["event_id"], dead[0]["attempts"]) == ("e-poison", 3)
    assert dead[1]["event_id"].startswith(f"{topic}/")  # topic/partition/offset
    assert dead[1]["attempts"] == 0
    assert "cannot digest e-poison" in dead[0]["error"]
    assert "no ce_id" in dead[1]["error"]
    assert committed == await end_offsets(kafka_bootstrap, topic)  # committed after, all of it
    assert await pool.fetchval(f"SELECT count(*) FROM {table}_attempts") == 1  # e-poison's

    # Everything again, as a consumer that crashed after its writes but before committing its
    # offsets would see it (read from the start, no group). Nothing is handled twice.
    handler.calls.clear()

    redelivered = Inbox(pool, consumer="printer", table=table, max_attempts=3)
    seen: list[Delivery] = []

    async def record_delivery(conn: Connection, event: Event) -> None:
        await handler(conn, event)

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while len(seen) < 7:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        seen.append(await redelivered.handle(Event.from_record(r), record_delivery))
    finally:
        await consumer.stop()
    assert handler.calls == []
    assert sorted(d.value for d in seen) == sorted(["duplicate"] * 7)
    assert await pool.fetchval(f"SELECT count(*) FROM {written}") == 4


async def test_each_consumer_name_handles_its_own_copy(
    pool: asyncpg.Pool, table: str, written: str
) -> None:
    event = Event(
        id="e-9",
        type="SagaSucceeded",
        source="/sagaz/test",
        topic="t",
        partition=0,
        offset=0,
        key=b"k",
        value=b'{"step": "all"}',
        headers={},
    )
    mailer = Inbox(pool, consumer="mailer", table=table)
    ledger = Inbox(pool, consumer="ledger", table=table)
    await mailer.install()
    handler = Handled(written, poison=set(), flaky={})

    deliveries = [
        await mailer.process(event, handler),
        await ledger.process(event, handler),
        await mailer.process(event, handler),
    ]

    assert deliveries == [Delivery.PROCESSED, Delivery.PROCESSED, Delivery.DUPLICATE]
    assert handler.calls == ["e-9", "e-9"]


async def test_concurrent_twins_are_handled_once(
    pool: asyncpg.Pool, table: str, written: str
) -> None:
    """Two members of a group holding the same record (a rebalance): one handles it."""
    event = Event(
        id="e-twin",
        type="StepSucceeded",
        source="/s",
        topic="t",
        partition=0,
        offset=1,
        key=None,
        value=b'{"step": "a"}',
        headers={},
    )
    inbox = Inbox(pool, consumer="twins", table=table)
    await inbox.install()
    handler = Handled(written, poison=set(), flaky={})

    async def slow(conn: Connection, e: Event) -> None:
        await handler(conn, e)
        await asyncio.sleep(0.2)

    results = await asyncio.gather(*(inbox.process(event, slow) for _ in range(4)))

    assert sorted(r.value for r in results) == ["duplicate", "duplicate", "duplicate", "processed"]
    assert await pool.fetchval(f"SELECT count(*) FROM {written}") == 1
