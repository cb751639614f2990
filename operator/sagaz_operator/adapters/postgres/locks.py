"""Fencing: a PostgreSQL advisory lock per saga, so only one executor ever runs it.

All locks of one operator process live on one dedicated connection: if the process dies,
PostgreSQL drops the connection and every lock with it, so another replica can take over at
once. If the connection breaks while this process lives, every executor must stop (its lock
is gone): ``alive`` tells them.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg


def lock_key(uid: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a saga uid."""
    return int.from_bytes(uuid.UUID(uid).bytes[:8], "big", signed=True)


class SagaLocks:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._guard = asyncio.Lock()  # one asyncpg connection serves one query at a time

    @classmethod
    async def open(cls, dsn: str) -> SagaLocks:
        return cls(await asyncpg.connect(dsn))

    @property
    def alive(self) -> bool:
        return not self._conn.is_closed()

    async def try_acquire(self, uid: str) -> bool:
        async with self._guard:
            acquired: bool = await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", lock_key(uid)
            )
            return acquired

    async def release(self, uid: str) -> None:
        if not self.alive:
            return
        async with self._guard:
            await self._conn.execute("SELECT pg_advisory_unlock($1)", lock_key(uid))

    async def close(self) -> None:
        await self._conn.close()
