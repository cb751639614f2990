"""Outbox tables, events and an independent Kafka consumer for the relay tests."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer

from harness import stack

SCHEMA = (stack.REPO_ROOT / "examples" / "outboxworker" / "outbox.sql").read_text()
COLUMNS = ["id", "aggregate_type", "aggregate_id", "event_type", "payload", "topic", "created_at"]
COLUMNS += ["headers"]
WORKER = str(Path(sys.executable).with_name("sagaz-outbox-worker"))


@dataclass(frozen=True)
class Event:
    id: uuid.UUID
    key: str
    payload: str
    created_at: datetime
    topic: str | None = None


def events(count: int, *, aggregates: int, seed: int = 0) -> list[Event]:
    """``count`` events spread at random over ``aggregates`` keys, 1 µs apart: insert order."""
    rng = random.Random(seed)
    start = datetime.now(UTC)
    made = []
    for n in range(count):
        key = f"agg-{rng.randrange(aggregates)}"
        payload = json.dumps({"n": n, "key": key})
        made.append(Event(uuid.uuid4(), key, payload, start + timedelta(microseconds=n)))
    return made


async def insert(conn: asyncpg.Connection, table: str, batch: Sequence[Event]) -> None:
    await conn.copy_records_to_table(
        table,
        columns=COLUMNS,
        records=[
            (e.id, "Test", e.key, "TestEvent", e.payload, e.topic, e.created_at, '{"k": 1}')
            for e in batch
        ],
    )  # COPY fires the NOTIFY trigger as an INSERT does


async def statuses(conn: asyncpg.Connection, table: str) -> dict[str, int]:
    rows = await conn.fetch(f"SELECT status, count(*) AS n FROM {table} GROUP BY status")
    return {row["status"]: row["n"] for row in rows}


async def wait_for_status(
    conn: asyncpg.Connection, table: str, status: str, count: int, *, within: float
) -> None:
    deadline = time.monotonic() + within
    while (found := (await statuses(conn, table)).get(status, 0)) < count:
        assert time.monotonic() < deadline, f"{found}/{count} {status} after {within}s"
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Received:
    key: str
    ce_id: str
    value: bytes
    headers: dict[str, bytes]


async def consume(bootstrap: str, topic: str, ids: set[str], *, within: float) -> list[Received]:
    """Every record of ``topic`` until all ``ids`` were seen, in offset order per partition."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    received: list[Received] = []
    seen: set[str] = set()
    deadline = time.monotonic() + within
    try:
        while not ids <= seen:
            assert time.monotonic() < deadline, f"{len(ids - seen)} events never reached Kafka"
            batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    item = Received(
                        record.key.decode(), headers["ce_id"].decode(), record.value, headers
                    )
                    received.append(item)
                    seen.add(item.ce_id)
    finally:
        await consumer.stop()
    return received


def assert_in_order(received: Sequence[Received], sent: Sequence[Event]) -> None:
    """Each key's events in insert order once duplicates are dropped; duplicates identical."""
    first: dict[str, Received] = {}
    order: dict[str, list[str]] = {}
    for item in received:
        if item.ce_id in first:
            assert first[item.ce_id] == item, f"a duplicate of {item.ce_id} differs"
            continue
        first[item.ce_id] = item
        order.setdefault(item.key, []).append(item.ce_id)
    expected: dict[str, list[str]] = {}
    for event in sent:
        expected.setdefault(event.key, []).append(str(event.id))
    assert order == expected


# ---------------------------------------------------------------------------------------------
