"""The floor: a bare asyncio loop making the same calls, journaled write-ahead in PostgreSQL.

No engine, no Kubernetes: one commit before each participant call ("dispatched") and one
after ("succeeded" / "failed"), the diamond and its compensations written out by hand. It is
what any durable orchestrator in Python on this machine pays at least, with the given HTTP
client. No retries: nothing in the workload fails in a way that would be retried.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import asyncpg

from bench import clients
from bench.figures import Run
from bench.workload import COMPENSATED, Call, StepFailedError, Variant, path

TABLE = """CREATE TABLE IF NOT EXISTS bench_floor_journal (
    saga text NOT NULL, seq int NOT NULL, step text NOT NULL, event text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (saga, seq))"""


class Floor:
    def __init__(self, *, client: str, database_url: str, participant_url: str) -> None:
        self.name = f"floor ({client})"
        self._client_name = client
        self._database_url = database_url
        self._participant = participant_url
        self._pool: asyncpg.Pool | None = None
        self._client: clients.Poster | None = None

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(self._database_url, min_size=5, max_size=20)
        await self._pool.execute(TABLE)
        self._client = clients.poster(self._client_name)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._pool is not None:
            await self._pool.close()

    async def run(self, *, n: int, variant: Variant) -> Run:
        batch = uuid.uuid4().hex[:8]
        run = Run(system=self.name, variant=variant, n=n, started=time.monotonic())

        async def one(index: int) -> None:
            saga = f"floor-{batch}-{index}"
            run.outcomes[saga] = await self._saga(saga)
            run.finished[saga] = time.monotonic()

        await asyncio.gather(*(one(i) for i in range(n)))
        return run

    async def _saga(self, saga: str) -> str:
        seq = itertools.count()
        done: list[str] = []

        async def step(name: str, purpose: str = "action") -> None:
            assert self._pool is not None
            assert self._client is not None
            journal = (
                "INSERT INTO bench_floor_journal (saga, seq, step, event) VALUES ($1,$2,$3,$4)"
            )
            await self._pool.execute(journal, saga, next(seq), name, f"{purpose} dispatched")
            call = Call(self._participant + path(name, purpose), saga, name, purpose)
            try:
                await self._client.post(call)
            except StepFailedError:
                await self._pool.execute(journal, saga, next(seq), name, f"{purpose} failed")
                raise
            await self._pool.execute(journal, saga, next(seq), name, f"{purpose} succeeded")
            if purpose == "action":
                done.append(name)

        try:
            await step("a")
            results = await asyncio.gather(step("b"), step("c"), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            await step("d")
        except StepFailedError:
            await asyncio.gather(*(step(s, "compensation") for s in ("b", "c") if s in done))
            if "a" in done and "a" in COMPENSATED:
                await step("a", "compensation")
            return "Compensated"
        return "Succeeded"
