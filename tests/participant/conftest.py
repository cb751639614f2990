"""Fixtures of the participant SDK's tests: a pool on the session's real PostgreSQL and
fresh tables per test (so tests never see each other's keys)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from sagaz_participant import Idempotency


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(postgres_url, min_size=1, max_size=10) as created:
        yield created


@pytest.fixture
async def idempotency(pool: asyncpg.Pool) -> Idempotency:
    made = Idempotency(pool, table=f"idem_{uuid.uuid4().hex[:10]}")
    await made.install()
    return made


@pytest.fixture
async def writes(pool: asyncpg.Pool) -> str:
    """A table the handlers under test write to: what was applied, one row per handler run."""
    table = f"writes_{uuid.uuid4().hex[:10]}"
    await pool.execute(f"CREATE TABLE {table} (key text, what text)")
    return table
