"""A participant process killed (``kill -9``) between its writes and the commit."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from harness import stack
from harness.sdk import applied
from sagaz_participant import Idempotency

pytestmark = pytest.mark.postgres

SCRIPT = Path(__file__).with_name("stalling_participant.py")
KEY = "c0ffee-uid/debit/action"


class Process:
    def __init__(self, dsn: str, table: str, writes: str) -> None:
        self.args = [dsn, table, writes]
        self.port = stack.free_port()
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), *self.args, str(self.port), stdout=asyncio.subprocess.PIPE
        )
        await self.line("LISTENING")

    async def line(self, expected: str) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async with asyncio.timeout(30):
            assert (await self.process.stdout.readline()).decode().strip() == expected

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no handler, no rollback, no goodbye to PostgreSQL

    async def wait(self) -> None:
        assert self.process is not None
        await self.process.wait()


@pytest.fixture
async def participant(
    postgres_url: str, idempotency: Idempotency, writes: str
) -> AsyncIterator[Process]:
    made = Process(postgres_url, idempotency.table, writes)
    yield made
    if made.process is not None and made.process.returncode is None:
        made.kill()
        await made.wait()


async def post(port: int, body: dict[str, bool]) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{port}/apply", json=body, headers={"Idempotency-Key": KEY}
        ) as answer,
    ):
        return answer.status, await answer.json()


async def test_a_kill_before_the_commit_applies_nothing_and_the_retry_applies_once(
    participant: Process, idempotency: Idempotency, pool: asyncpg.Pool, writes: str
) -> None:
    await participant.start()
    request = asyncio.create_task(post(participant.port, {"stall": True}))
    await participant.line("WROTE")  # the row is written, uncommitted
    participant.kill()
    await participant.wait()
    with contextlib.suppress(aiohttp.ClientError):
        await request
    assert request.exception() is not None  # the caller saw no answer: it will retry

    # Uncommitted, so invisible; and the kill closed the connection, so PostgreSQL rolled the
    # transaction back and released the key's lock (the retry below would wait on it otherwise).
    assert await applied(pool, writes) == []
    assert await pool.fetchval(f"SELECT count(*) FROM {idempotency.table}") == 0

    await participant.start()
    first = await post(participant.port, {})
    again = await post(participant.port, {})

    assert first == again == (200, {"applied": KEY})
    assert await applied(pool, writes) == [(KEY, "applied")]
