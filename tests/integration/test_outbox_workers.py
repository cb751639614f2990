"""Outbox relay worker processes (the console script): sharing partitions, health, metrics,
kill -9 mid-batch, and refusing to start with a clear message."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from harness import stack
from harness.outbox import (
    WORKER,
    assert_in_order,
    consume,
    events,
    insert,
    statuses,
    wait_for_status,
)
from sagaz_operator.services.relay_config import RelaySettings

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

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
    async with asyncio.timeout(60):  # a query per turn: nothing to await but the next batch
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
