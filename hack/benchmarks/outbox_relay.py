"""How fast the outbox relay publishes, and how soon a committed event reaches Kafka.

    .venv/bin/python hack/benchmarks/outbox_relay.py --events 100000 --workers 1 2 4

Everything is real: a throw-away PostgreSQL of its own (hack/postgres.sh), the local Kafka
broker (hack/kafka.sh; reused if running), and ``sagaz-outbox-worker`` *processes* started
through the console script, as a Deployment would run them.

- **Throughput**: N workers are started on an empty table and left to share its partitions;
  then ``--events`` rows over ``--aggregates`` aggregates are committed at once (COPY), and
  the clock runs from that commit until the last row is marked published (acknowledged by
  Kafka with acks=all).
- **Latency**: one worker; single-row transactions are committed at a steady ``--rate`` for
  ``--seconds``; a consumer records, for each event, the time from the row's ``created_at``
  (the inserting transaction's start) until it was read from the topic. The worker polls only
  every 30 s here, so what is measured is the LISTEN/NOTIFY path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

ROOT = Path(__file__).resolve().parents[2]
WORKER = str(Path(sys.executable).with_name("sagaz-outbox-worker"))
SCHEMA = (ROOT / "examples" / "outboxworker" / "outbox.sql").read_text()
PARTITIONS = 16


def hack(script: str, command: str, **env: str) -> str:
    done = subprocess.run(
        [str(ROOT / "hack" / script), command],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Workers:
    """N ``sagaz-outbox-worker`` processes on one table, stopped with SIGTERM."""

    def __init__(
        self, count: int, *, url: str, bootstrap: str, table: str, topic: str, **extra: str
    ):
        self.ports = [free_port() for _ in range(count)]
        self.logs = Path(tempfile.mkdtemp(prefix="outbox-bench-"))
        self.processes = []
        for n, port in enumerate(self.ports):
            env = {
                **os.environ,
                "SAGAZ_DATABASE_URL": url,
                "SAGAZ_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "SAGAZ_OUTBOX_TABLE": table,
                "SAGAZ_KAFKA_TOPIC": topic,
                "SAGAZ_OUTBOX_PARTITIONS": str(PARTITIONS),
                "SAGAZ_WORKER_ADDRESS": f"127.0.0.1:{port}",
                "SAGAZ_OUTBOX_REBALANCE_SECONDS": "0.5",
                **extra,
            }
            with (self.logs / f"worker-{n}.log").open("wb") as log:
                self.processes.append(
                    subprocess.Popen([WORKER], env=env, stdout=log, stderr=subprocess.STDOUT)
                )

    async def balanced(self, *, within: float = 120) -> None:
        """Wait until every worker is healthy and the partitions are shared out fairly."""
        cap = -(-PARTITIONS // len(self.ports))
        deadline = time.monotonic() + within
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                try:
                    states = [
                        (await http.get(f"http://127.0.0.1:{p}/healthz")).json() for p in self.ports
                    ]
                except httpx.TransportError:
                    states = []
                owned = [len(s["partitions"]) for s in states]
                if (
                    len(states) == len(self.ports)
                    and sum(owned) == PARTITIONS
                    and max(owned) <= cap
                ):
                    return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"workers not balanced after {within}s; see {self.logs}")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)


async def new_table(conn: asyncpg.Connection) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    await conn.execute(SCHEMA.replace("sagaz_outbox", name))
    return name


async def wait_published(conn: asyncpg.Connection, table: str, count: int) -> None:
    while True:
        done = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE status = 'published'")
        if done >= count:
            return
        await asyncio.sleep(0.05)


async def throughput(
    url: str, bootstrap: str, *, workers: int, events: int, aggregates: int
) -> float:
    conn = await asyncpg.connect(url)
    table = await new_table(conn)
    fleet = Workers(workers, url=url, bootstrap=bootstrap, table=table, topic=f"bench-{table}")
    try:
        await fleet.balanced()
        rng = random.Random(workers)
        start = datetime.now(UTC)
        rows = [
            (
                uuid.uuid4(),
                "Bench",
                f"agg-{rng.randrange(aggregates)}",
                "BenchEvent",
                json.dumps({"n": n, "data": "x" * 100}),
                start + timedelta(microseconds=n),
            )
            for n in range(events)
        ]
        columns = ["id", "aggregate_type", "aggregate_id", "event_type", "payload", "created_at"]
        await conn.copy_records_to_table(table, columns=columns, records=rows)
        committed = time.perf_counter()
        await wait_published(conn, table, events)
        return events / (time.perf_counter() - committed)
    finally:
        fleet.stop()
        await conn.execute(f"DROP TABLE {table}; DROP FUNCTION {table}_notify()")
        await conn.close()


async def latency(url: str, bootstrap: str, *, rate: float, seconds: float) -> list[float]:
    conn = await asyncpg.connect(url)
    table = await new_table(conn)
    topic = f"bench-{table}"
    fleet = Workers(
        1, url=url, bootstrap=bootstrap, table=table, topic=topic, SAGAZ_OUTBOX_POLL_SECONDS="30"
    )
    insert = f"""INSERT INTO {table} (id, aggregate_type, aggregate_id, event_type, payload)
                 VALUES ($1, 'Bench', $2, 'BenchEvent', $3) RETURNING created_at"""
    try:
        await fleet.balanced()
        warm_up = uuid.uuid4()
        await conn.fetchval(insert, warm_up, "warm-up", "{}")  # creates the topic
        await wait_published(conn, table, 1)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        created: dict[str, datetime] = {}  # ce_id -> the row's created_at
        received: dict[str, datetime] = {}  # ce_id -> when the consumer first had it
        total = int(rate * seconds)

        async def produce() -> None:
            start = time.perf_counter()
            for n in range(total):
                await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
                event_id = uuid.uuid4()
                created[str(event_id)] = await conn.fetchval(
                    insert, event_id, f"agg-{n % 50}", "{}"
                )

        async def receive() -> None:
            while len(received) < total:
                batches = await consumer.getmany(timeout_ms=1000)
                now = datetime.now(UTC)
                for records in batches.values():
                    for record in records:
                        ce_id = dict(record.headers)["ce_id"].decode()
                        if ce_id != str(warm_up):
                            received.setdefault(ce_id, now)

        try:
            await asyncio.wait_for(asyncio.gather(produce(), receive()), seconds + 60)
        finally:
            await consumer.stop()
        return [(received[key] - created[key]).total_seconds() for key in created]
    finally:
        fleet.stop()
        await conn.execute(f"DROP TABLE {table}; DROP FUNCTION {table}_notify()")
        await conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def measure(url: str, bootstrap: str, args: argparse.Namespace) -> None:
    print(
        f"throughput: {args.events:,} events over {args.aggregates:,} aggregates, "
        f"{PARTITIONS} partitions, batch 500, worker processes"
    )
    print(f"{'workers':>8} {'events/s':>10}")
    for count in args.workers:
        rate = await throughput(
            url, bootstrap, workers=count, events=args.events, aggregates=args.aggregates
        )
        print(f"{count:>8} {rate:>10,.0f}", flush=True)
    delays = await latency(url, bootstrap, rate=args.rate, seconds=args.seconds)
    print(
        f"\nlatency: commit to consumer, 1 worker, {args.rate:g} single-row commits/s "
        f"for {args.seconds:g}s (LISTEN/NOTIFY; poll every 30s)"
    )
    print(
        f"  events {len(delays)}   p50 {statistics.median(delays) * 1000:.1f} ms   "
        f"p99 {percentile(delays, 0.99) * 1000:.1f} ms   max {max(delays) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--aggregates", type=int, default=1_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rate", type=float, default=200.0, help="commits/s in the latency run")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    kafka_was_running = (
        subprocess.run(
            [str(ROOT / "hack" / "kafka.sh"), "status"], capture_output=True, check=False
        ).returncode
        == 0
    )
    bootstrap = hack("kafka.sh", "start")
    url = hack("postgres.sh", "start", SAGAZ_PG_NAME="postgres-bench-outbox")
    try:
        asyncio.run(measure(url, bootstrap, args))
    finally:
        hack("postgres.sh", "destroy", SAGAZ_PG_NAME="postgres-bench-outbox")
        if not kafka_was_running:
            hack("kafka.sh", "stop")


if __name__ == "__main__":
    main()
