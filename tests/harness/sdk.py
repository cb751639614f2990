"""Helpers of the participant SDK's tests: what handlers applied, who waits on a lock."""

from __future__ import annotations

import asyncio

import asyncpg


async def applied(pool: asyncpg.Pool, table: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(f"SELECT key, what FROM {table} ORDER BY key, what")
    return [(r["key"], r["what"]) for r in rows]


async def lock_waiters(pool: asyncpg.Pool) -> int:
    """How many sessions wait for an advisory lock (a duplicate queued behind its first)."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    return count


async def until_lock_waiter(pool: asyncpg.Pool, *, within: float = 30) -> None:
    """Return once some session waits for an advisory lock.

    pg_locks is the only witness that a duplicate is queued behind its first; PostgreSQL
    offers no event for it, so this polls (briefly, with a deadline).
    """
    async with asyncio.timeout(within):
        while await lock_waiters(pool) < 1:  # noqa: ASYNC110 - polling is all there is
            await asyncio.sleep(0.02)
