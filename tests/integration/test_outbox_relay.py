"""The outbox relay against a real PostgreSQL and a real Kafka broker.

Every test gets its own outbox table (``examples/outboxworker/outbox.sql`` under a random
name) and its own topic. What reached Kafka is checked independently, by a consumer reading
the topic: every event is there, each key's events appear in insert order once duplicates are
dropped, and a duplicate is always the same record (same ``ce_id``, same value).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from harness import stack
from sagaz_operator.adapters.postgres import migrations, outbox
from sagaz_operator.domain import partitions
from sagaz_operator.services.relay import Relay
from sagaz_operator.services.relay_config import RelaySettings

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

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


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_url)
    yield conn
    await conn.close()


@pytest.fixture
async def table(db: asyncpg.Connection) -> AsyncIterator[str]:
    name = f"outbox_{uuid.uuid4().hex[:10]}"
    await db.execute(SCHEMA.replace("sagaz_outbox", name))
    yield name
    await db.execute(f"DROP TABLE {name}; DROP FUNCTION {name}_notify()")


@pytest.fixture
def topic() -> str:
    return f"relay-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(postgres_url: str, kafka_bootstrap: str, table: str, topic: str) -> RelaySettings:
    return RelaySettings(
        database_url=postgres_url,
        bootstrap_servers=kafka_bootstrap,
        table=table,
        topic=topic,
        address=None,
        poll_seconds=0.5,
        rebalance_seconds=0.5,
        publish_timeout_seconds=5.0,
    )


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


async def test_kafka_outage_pauses_and_resumes_without_marking_unacknowledged_rows(
    db: asyncpg.Connection, settings: RelaySettings, own_kafka: Path
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
        await asyncio.sleep(8)  # several publish timeouts and backoffs
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
# Real worker processes, through the console script


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int


Spawn = Callable[[str], Worker]


@pytest.fixture
def spawn(settings: RelaySettings, tmp_path: Path) -> Iterator[Spawn]:
    started: list[Worker] = []

    def start(name: str) -> Worker:
        port = stack.free_port()
        env = {
            **os.environ,
            "SAGAZ_DATABASE_URL": settings.database_url,
            "SAGAZ_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "SAGAZ_OUTBOX_TABLE": settings.table,
            "SAGAZ_KAFKA_TOPIC": settings.topic,
            "SAGAZ_OUTBOXWORKER_NAME": "test",
            "SAGAZ_WORKER_ADDRESS": f"127.0.0.1:{port}",
            "SAGAZ_OUTBOX_POLL_SECONDS": "0.5",
            "SAGAZ_OUTBOX_REBALANCE_SECONDS": "0.5",
        }
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen([WORKER], env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        stack.wait_until_listening(port, process)
        started.append(worker := Worker(process, port))
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
            assert worker.process.wait(timeout=30) == 0, "a worker did not stop cleanly on SIGTERM"


async def test_worker_processes_share_partitions_and_serve_health_and_metrics(
    db: asyncpg.Connection, settings: RelaySettings, kafka_bootstrap: str, spawn: Spawn
) -> None:
    sent = events(20_000, aggregates=500, seed=4)
    first, second = spawn("first"), spawn("second")
    await insert(db, settings.table, sent)
    await wait_for_status(db, settings.table, "published", len(sent), within=120)

    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + 10
        while True:  # the first worker took everything; it gives half back within a rebalance
            health = [
                (await http.get(f"http://127.0.0.1:{w.port}/healthz")).json()
                for w in (first, second)
            ]
            owned = [set(h["partitions"]) for h in health]
            if len(owned[0]) == len(owned[1]) == settings.partitions // 2:
                break
            assert time.monotonic() < deadline, f"partitions never shared fairly: {owned}"
            await asyncio.sleep(0.2)
        page = (await http.get(f"http://127.0.0.1:{first.port}/metrics")).text
    assert all(h["database"] and h["kafka"] for h in health)
    assert owned[0].isdisjoint(owned[1])
    assert 'sagaz_outbox_published_total{outboxworker="test"}' in page
    received = await consume(kafka_bootstrap, settings.topic, {str(e.id) for e in sent}, within=60)
    assert_in_order(received, sent)


async def test_a_worker_killed_mid_batch_loses_nothing(
    db: asyncpg.Connection, settings: RelaySettings, kafka_bootstrap: str, spawn: Spawn
) -> None:
    sent = events(60_000, aggregates=300, seed=5)
    await insert(db, settings.table, sent)
    victim = spawn("victim")
    await wait_for_status(db, settings.table, "published", 5_000, within=60)
    # Mid-batch: its rows claimed (transaction open, the SELECT done) and on their way to Kafka.
    publishing = f"""SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'
                     AND application_name LIKE 'sagaz-outbox/{await table_oid(db, settings)}/%'"""
    while not await db.fetchval(publishing):
        pass
    await asyncio.sleep(0.02)  # long enough for Kafka to acknowledge, too short to mark
    victim.process.kill()
    victim.process.wait()
    done = await statuses(db, settings.table)
    assert done.get("pending", 0) > 0, "the worker finished before it could be killed"

    spawn("successor")
    await wait_for_status(db, settings.table, "published", len(sent), within=120)
    received = await consume(kafka_bootstrap, settings.topic, {str(e.id) for e in sent}, within=60)
    assert_in_order(received, sent)
    # Sent and acknowledged, but never marked: the batch the kill interrupted, sent again.
    print(f"\n{len(received) - len(sent)} duplicates after the kill")


async def table_oid(db: asyncpg.Connection, settings: RelaySettings) -> int:
    oid: int = await db.fetchval("SELECT $1::regclass::oid", settings.table)
    return oid


def run_worker(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SAGAZ_")}
    return subprocess.run(
        [WORKER], env={**base, **env}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SAGAZ_DATABASE_URL is not set"),
        ({"SAGAZ_OUTBOX_TABLE": "x; DROP TABLE y"}, "SAGAZ_OUTBOX_TABLE must be a plain SQL"),
        ({"SAGAZ_OUTBOX_PARTITIONS": "0"}, "SAGAZ_OUTBOX_PARTITIONS must be between 1 and"),
        ({"SAGAZ_OUTBOX_TABLE": "no_such_table"}, "outbox table 'no_such_table' does not exist"),
        ({"SAGAZ_DATABASE_URL": "postgresql://x:y@127.0.0.1:9/z"}, "cannot reach the database"),
    ],
)
def test_refuses_to_start_with_a_clear_message(
    postgres_url: str, kafka_bootstrap: str, env: dict[str, str], message: str
) -> None:
    defaults = {
        "SAGAZ_DATABASE_URL": postgres_url,
        "SAGAZ_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
    }
    if not env:
        defaults.pop("SAGAZ_DATABASE_URL")
    done = run_worker(**{**defaults, **env, "SAGAZ_WORKER_ADDRESS": "off"})

    assert done.returncode == 2
    assert message in done.stderr
