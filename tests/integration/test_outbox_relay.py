"""The outbox relay against a real PostgreSQL and a real Kafka broker.

Every test gets its own outbox table (``examples/outboxworker/outbox.sql`` under a random
name) and its own topic. What reached Kafka is checked independently, by a consumer reading
the topic: every event is there, each key's events appear in insert order once duplicates are
dropped, and a duplicate is always the same record (same ``ce_id``, same value).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from harness import stack
from harness.outbox import (
    assert_in_order,
    consume,
    events,
    insert,
    statuses,
    wait_for_status,
)
from sagaz_operator.adapters.postgres import migrations, outbox
from sagaz_operator.domain import partitions
from sagaz_operator.services.relay import Relay
from sagaz_operator.services.relay_config import RelaySettings

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


@asynccontextmanager
async def workers(settings: RelaySettings, count: int = 1) -> AsyncIterator[list[Relay]]:
    stop = asyncio.Event()
    relays = [Relay(settings, rng=random.Random(n)) for n in range(count)]
    tasks = [asyncio.create_task(relay.run(stop)) for relay in relays]
    try:
        yield relays
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_partition_sql_equals_python(db: asyncpg.Connection) -> None:
    rng = random.Random(7)
    keys = ["", "a", "é", "日本語", "emoji-🎉", str(uuid.UUID(int=0))]
    keys += [str(uuid.uuid4()) for _ in range(3000)]
    keys += [
        "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 40)))
        for _ in range(2000)
    ]
    for count in (1, 7, 16, 1024):
        rows = await db.fetch(
            f"SELECT key, {outbox.partition_sql('key', '$2')} AS p FROM unnest($1::text[]) AS key",
            keys,
            count,
        )
        assert {r["key"]: r["p"] for r in rows} == {
            k: partitions.partition_of(k, count) for k in keys
        }


async def test_sql_outbox_matches_the_migration(db: asyncpg.Connection, table: str) -> None:
    await migrations.migrate(db)

    async def shape(name: str) -> list[tuple[object, ...]]:
        columns = await db.fetch(
            """SELECT column_name, data_type, is_nullable, column_default
               FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position""",
            name,
        )
        index = await db.fetchval(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indrelid = $1::regclass"
            " AND indpred IS NOT NULL",
            name,
        )
        trigger = await db.fetchval(
            "SELECT tgtype FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal", name
        )
        return [tuple(c.values()) for c in columns] + [(index, trigger)]

    assert await shape(table) == await shape("sagaz_outbox")


@pytest.mark.parametrize("count", [1, 2, 4])
async def test_relays_100k_events_in_order_per_aggregate(
    db: asyncpg.Connection, settings: RelaySettings, kafka_bootstrap: str, count: int
) -> None:
    sent = events(100_000, aggregates=1_000, seed=count)
    await insert(db, settings.table, sent)

    started = time.monotonic()
    async with workers(settings, count) as relays:
        await wait_for_status(db, settings.table, "published", len(sent), within=240)
        elapsed = time.monotonic() - started
        assert all(relay.outbox.owned for relay in relays)  # every worker got a share
    print(f"\n{count} worker(s): {len(sent) / elapsed:,.0f} events/s")

    received = await consume(kafka_bootstrap, settings.topic, {str(e.id) for e in sent}, within=120)
    assert_in_order(received, sent)
    assert received[0].headers["ce_source"] == f"sagaz/{settings.table}".encode()
    assert received[0].headers["ce_type"] == b"TestEvent"
    assert received[0].headers["k"] == b"1"


async def owning(relay: Relay, count: int, *, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while len(relay.outbox.owned) != count:
        assert time.monotonic() < deadline, f"holds {len(relay.outbox.owned)}, not {count}"
        await asyncio.sleep(0.1)


async def test_workers_disagreeing_on_the_partition_count_never_run_together(
    settings: RelaySettings,
) -> None:
    async with workers(settings) as (sixteen,):
        await owning(sixteen, 16)
        async with workers(replace(settings, partitions=8)) as (eight,):
            await owning(sixteen, 0)
            await owning(eight, 0)
        await owning(sixteen, 16)


async def test_poison_event_is_dead_lettered_and_the_rest_flows(
    db: asyncpg.Connection, settings: RelaySettings, kafka_bootstrap: str
) -> None:
    sent = events(40, aggregates=4, seed=1)
    poison_index = next(i for i, e in enumerate(sent) if e.key == sent[0].key and i > 0)
    poison = replace(sent[poison_index], payload=json.dumps({"blob": "x" * 2_000_000}))
    sent[poison_index] = poison
    await insert(db, settings.table, sent)

    fast_retries = replace(settings, max_attempts=3, retry_seconds=0.3)
    async with workers(fast_retries):
        await wait_for_status(db, settings.table, "published", len(sent) - 1, within=60)

    row = await db.fetchrow(
        f"SELECT status, attempts, last_error FROM {settings.table} WHERE id = $1", poison.id
    )
    assert (row["status"], row["attempts"]) == ("dead", 3)
    assert "MessageSizeTooLarge" in row["last_error"]
    times = {
        r["id"]: r["published_at"]
        for r in await db.fetch(f"SELECT id, published_at FROM {settings.table}")
    }
    later_same = [e.id for e in sent[poison_index + 1 :] if e.key == poison.key]
    others = [e.id for e in sent if e.key != poison.key]
    # Other aggregates flowed while the poisoned one waited for its event to die.
    assert max(times[i] for i in others) < min(times[i] for i in later_same)

    delivered = [e for e in sent if e.id != poison.id]
    received = await consume(
        kafka_bootstrap, settings.topic, {str(e.id) for e in delivered}, within=60
    )
    assert_in_order(received, delivered)


async def test_rows_may_name_their_own_topic_and_a_bad_one_dies_alone(
    db: asyncpg.Connection, settings: RelaySettings, kafka_bootstrap: str
) -> None:
    own = f"{settings.topic}-own"
    sent = [replace(e, topic=own) for e in events(10, aggregates=2, seed=6)]
    bad = replace(events(1, aggregates=1, seed=7)[0], topic="not a topic!")
    await insert(db, settings.table, [bad, *sent])
    async with workers(replace(settings, max_attempts=1)):
        await wait_for_status(db, settings.table, "published", len(sent), within=30)
    assert await statuses(db, settings.table) == {"published": len(sent), "dead": 1}
    received = await consume(kafka_bootstrap, own, {str(e.id) for e in sent}, within=30)
    assert_in_order(received, sent)


async def test_notify_wakes_a_worker_long_before_the_poll(
    db: asyncpg.Connection, settings: RelaySettings, kafka_bootstrap: str
) -> None:
    slow_poll = replace(settings, poll_seconds=30, rebalance_seconds=30, stats_seconds=30)
    async with workers(slow_poll) as (relay,):
        deadline = time.monotonic() + 10
        while len(relay.outbox.owned) < settings.partitions or not relay.healthy:
            assert time.monotonic() < deadline, "the worker never took its partitions"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # idle now: asleep until a NOTIFY, or 30 s from now
        for n in range(3):
            event_id = uuid.uuid4()
            await db.execute(
                f"""INSERT INTO {settings.table} (id, aggregate_type, aggregate_id, event_type,
                        payload) VALUES ($1, 'Test', 'notify', 'TestEvent', $2)""",
                event_id,
                json.dumps({"n": n}),
            )
            inserted = time.monotonic()
            await wait_for_status(db, settings.table, "published", n + 1, within=5)
            print(f"\npublished {time.monotonic() - inserted:.3f}s after the insert")
    received = await consume(kafka_bootstrap, settings.topic, {str(event_id)}, within=30)
    assert [r.key for r in received] == ["notify"] * 3


async def kafka_sh(command: str, *, state: Path) -> str:
    """``hack/kafka.sh COMMAND`` for a broker of this test's own (``SAGAZ_STATE=state``)."""
    process = await asyncio.create_subprocess_exec(
        str(stack.HACK / "kafka.sh"),
        command,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "SAGAZ_STATE": str(state)},
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, f"hack/kafka.sh {command} failed"
    return out.decode().strip().splitlines()[-1] if out.strip() else ""


@pytest.fixture
async def own_kafka(tmp_path: Path) -> AsyncIterator[Path]:
    """A second real broker, started by the same script, that this test alone stops.

    Stopping the session's shared broker would break whoever else uses it meanwhile (and a
    test session starting during the outage would think it started the broker, and stop it
    when it ends), so the outage happens to a broker nobody else knows about.
    """
    state = tmp_path / "kafka-state"
    await kafka_sh("start", state=state)
    try:
        yield state
    finally:
        await kafka_sh("stop", state=state)


@asynccontextmanager
async def logged(text: str, *, times: int) -> AsyncIterator[asyncio.Event]:
    """An event set once the relay (running in this loop) has logged ``text`` ``times`` times."""
    seen = asyncio.Event()

    class Counter(logging.Handler):
        count = 0

        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                self.count += 1
                if self.count >= times:
                    seen.set()

    counter = Counter()
    logger = logging.getLogger("sagaz_operator.services.relay")
    logger.addHandler(counter)
    try:
        yield seen
    finally:
        logger.removeHandler(counter)


async def test_kafka_outage_pauses_and_resumes_without_marking_unacknowledged_rows(
    db: asyncpg.Connection,
    settings: RelaySettings,
    own_kafka: Path,
) -> None:
    bootstrap = await kafka_sh("bootstrap", state=own_kafka)
    settings = replace(settings, bootstrap_servers=bootstrap)
    before = events(500, aggregates=20, seed=2)
    during = events(1000, aggregates=20, seed=3)
    await insert(db, settings.table, before)
    async with workers(settings) as (relay,):
        await wait_for_status(db, settings.table, "published", len(before), within=60)
        await kafka_sh("stop", state=own_kafka)
        await insert(db, settings.table, during)
        async with asyncio.timeout(60), logged("Kafka is unavailable", times=3) as outages:
            await outages.wait()  # the worker reports each failed try: three of them
        assert await statuses(db, settings.table) == {"published": 500, "pending": 1000}
        assert not relay.healthy

        assert await kafka_sh("start", state=own_kafka) == bootstrap
        await wait_for_status(db, settings.table, "published", 1500, within=120)
        deadline = time.monotonic() + 15
        while not relay.healthy:
            assert time.monotonic() < deadline, "the worker never reported healthy again"
            await asyncio.sleep(0.2)
    sent = before + during
    received = await consume(bootstrap, settings.topic, {str(e.id) for e in sent}, within=60)
    assert_in_order(received, sent)


# --------------------------------------------------------------------------------------------
