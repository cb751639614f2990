"""What journaling in PostgreSQL costs: the same sagas with and without the database.

    .venv/bin/python hack/benchmarks/journal_overhead.py --sagas 200 --steps 3

Runs the real executor (engine, HTTP participants over loopback) for N concurrent sagas
twice in one process: once journaling to a throw-away PostgreSQL (each transition and its
outbox row in one transaction, as in production), once to memory. Kubernetes is not
involved: this isolates the journal. Prints sagas/s and per-step latency (dispatch to
journaled success) for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from harness.participants import ParticipantServer, Respond  # noqa: E402
from sagaz_operator.adapters import participants  # noqa: E402
from sagaz_operator.adapters.jobs import JobParticipants  # noqa: E402
from sagaz_operator.adapters.kube import Kube  # noqa: E402
from sagaz_operator.adapters.postgres import migrations  # noqa: E402
from sagaz_operator.adapters.postgres.journal import Journal, SagaRecord  # noqa: E402
from sagaz_operator.domain import definitions, egress, jobs, state  # noqa: E402
from sagaz_operator.domain import events as ev  # noqa: E402
from sagaz_operator.domain.model import Json, SagaUid  # noqa: E402
from sagaz_operator.services.executor import Controls, Executor  # noqa: E402
from sagaz_operator.services.steps import SagaContext, StepRunner  # noqa: E402


def now() -> datetime:
    return datetime.now(UTC)


class Never:
    def is_set(self) -> bool:
        return False

    def wait(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()


class Always:
    async def ensure(self) -> bool:
        return True


@dataclass
class Timings:
    """Observer that records step latency and nothing else."""

    dispatched: dict[tuple[str, str], datetime] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    uid: str = ""

    def observe(self, event: ev.Event, current: state.SagaState) -> None:
        match event:
            case ev.StepDispatched(step=step, at=at):
                self.dispatched[(self.uid, step)] = at
            case ev.StepSucceeded(step=step):
                started = self.dispatched.pop((self.uid, step))
                self.latencies.append((now() - started).total_seconds())

    def publish(self, current: state.SagaState) -> None:
        pass

    def database(self, *, available: bool, message: str) -> None:
        pass


class MemoryJournal:
    def __init__(self) -> None:
        self.entries: list[str] = []

    async def append(self, events: Sequence[ev.Event], *, after: state.SagaState) -> None:
        from sagaz_operator.domain import codec

        self.entries.extend(json.dumps(codec.encode(e)) for e in events)


class PostgresJournal:
    def __init__(self, journal: Journal, record: SagaRecord, version: int) -> None:
        self._journal, self._record, self._version = journal, record, version

    async def append(self, events: Sequence[ev.Event], *, after: state.SagaState) -> None:
        self._version = await self._journal.append(
            self._record,
            version=self._version,
            events=events,
            phase=after.phase.value,
            finished=after.finished,
        )


async def run_all(
    *, count: int, spec: dict[str, Json], runner: StepRunner, journal: Journal | None
) -> tuple[float, list[float]]:
    definition = definitions.load(spec)
    timings: list[float] = []

    async def one(index: int) -> None:
        uid = str(uuid.uuid4())
        observer = Timings(uid=uid)
        first = ev.SagaStarted(at=now())  # journaled with the record, as the saga service does
        if journal is None:
            port: MemoryJournal | PostgresJournal = MemoryJournal()
        else:
            record = SagaRecord(
                uid=uid,
                namespace="bench",
                name=f"bench-{index}",
                definition_name="bench",
                definition_generation=1,
                definition=spec,
                input={},
            )
            await journal.start(record, first=first, phase="Running", finished=False)
            port = PostgresJournal(journal, record, version=1)
        executor = Executor(
            saga=SagaContext(uid=uid, name=f"bench-{index}", namespace="bench", input={}),
            current=state.evolve(state.initial(uid=SagaUid(uid), definition=definition), first),
            journal=port,
            runner=runner,
            observer=observer,
            controls=Controls(),
            clock=now,
            fence=Always(),
        )
        final = await executor.run(Never())
        assert final.phase.value == "Succeeded", final.message
        timings.extend(observer.latencies)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started, timings


def describe(label: str, count: int, elapsed: float, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    return (
        f"{label:<10} {count / elapsed:8.1f} sagas/s   step latency p50 {p50:6.1f} ms"
        f"   p99 {p99:6.1f} ms   ({count} sagas in {elapsed:.2f}s)"
    )


def postgres(command: str) -> str:
    """Start or destroy the benchmark's own throw-away PostgreSQL (hack/postgres.sh)."""
    done = subprocess.run(
        [str(ROOT / "hack" / "postgres.sh"), command],
        env={**os.environ, "SAGAZ_PG_NAME": "postgres-bench"},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=200)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    url = postgres("start").split()[-1]
    try:
        asyncio.run(measure(url, sagas=args.sagas, steps=args.steps))
    finally:
        postgres("destroy")


async def measure(url: str, *, sagas: int, steps: int) -> None:
    async with ParticipantServer() as server:
        names: list[Json] = [f"s{i}" for i in range(steps)]
        for name in names:
            server.on(f"/{name}", Respond(json={"ok": True}))
        spec: dict[str, Json] = {
            "steps": [
                {
                    "name": name,
                    "dependsOn": names[i - 1 : i],
                    "action": {"http": {"url": server.url(f"/{name}")}},
                }
                for i, name in enumerate(names)
            ]
        }
        client = participants.new_client(max_connections=200)
        # Neither Secrets nor Jobs are used here: a Kube that would fail if it were called.
        unused = Kube("http://127.0.0.1:9")
        runner = StepRunner(
            http=participants.HttpParticipants(
                client=client, egress=egress.EgressPolicy(), secrets=unused
            ),
            jobs=JobParticipants(kube=unused, policy=jobs.JobPolicy()),
        )
        pool = await asyncpg.create_pool(url, min_size=5, max_size=20)
        async with pool.acquire() as conn:
            await migrations.migrate(conn)
        await run_all(count=20, spec=spec, runner=runner, journal=None)  # warm-up
        journaled = await run_all(count=sagas, spec=spec, runner=runner, journal=Journal(pool))
        memory = await run_all(count=sagas, spec=spec, runner=runner, journal=None)
        await pool.close()
        await client.close()
        await unused.close()
    print(f"{sagas} concurrent sagas of {steps} HTTP steps on loopback")
    print(describe("memory", sagas, *memory))
    print(describe("postgres", sagas, *journaled))


if __name__ == "__main__":
    main()
