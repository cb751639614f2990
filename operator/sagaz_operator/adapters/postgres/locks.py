"""Fencing: a PostgreSQL advisory lock per saga, so only one executor ever runs it.

All locks of one operator process live on one dedicated connection: if the process dies,
PostgreSQL drops the connection and every lock with it, so another replica can take over at
once. If that connection breaks while this process lives (a database restart), every lock is
gone: ``epoch`` counts connections, and an executor whose lock was taken under an older epoch
must take it again (``holds``) before it writes anything more.

Locks are given back in batches (``batches``): one statement for every saga that finished
meanwhile. They are *taken* one statement each, on purpose: that admits a burst of new sagas
one by one, so the first ones run ahead and finish first. Taken in batches (measured with
``make bench``, 1000 sagas created at once), the whole burst started together and moved in
lockstep: step overhead p50 rose from about 0.1 s to 1.2 s and saga latency p50 by 10-35 %,
for no more sagas per second.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import asyncpg

from sagaz_operator.adapters.postgres.batches import Batches
from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError, unavailable

_UNLOCKS = "SELECT pg_advisory_unlock(t.key) FROM unnest($1::bigint[]) AS t(key)"


def lock_key(uid: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a saga uid."""
    return int.from_bytes(uuid.UUID(uid).bytes[:8], "big", signed=True)


class SagaLocks:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._guard = asyncio.Lock()  # one asyncpg connection serves one query at a time
        self._held: dict[str, int] = {}  # saga uid -> epoch it was acquired in
        self._answered_at = float("-inf")  # loop time the lock connection last answered
        self.epoch = 0
        self._releases: Batches[tuple[str, int], None] = Batches(self._release, name="saga unlocks")

    async def try_acquire(self, uid: str) -> bool:
        async with self._guard:
            conn = await self._connection()
            try:
                acquired: bool = await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", lock_key(uid)
                )
            except unavailable() as error:
                raise DatabaseUnavailableError(str(error)) from error
            self._answered_at = asyncio.get_running_loop().time()
            if acquired:
                self._held[uid] = self.epoch
            return acquired

    @property
    def releases(self) -> Batches[tuple[str, int], None]:
        """The batched unlock statements, for tests and benchmarks."""
        return self._releases

    def holds(self, uid: str) -> bool:
        """True while the lock taken for ``uid`` is still held (same connection)."""
        return (
            self._held.get(uid) == self.epoch
            and self._conn is not None
            and not self._conn.is_closed()
        )

    async def release(self, uid: str) -> None:
        epoch = self._held.pop(uid, None)
        if epoch == self.epoch and self.connected:
            await self._releases.submit((uid, epoch))

    async def _release(self, held: Sequence[tuple[str, int]]) -> list[None]:
        async with self._guard:
            # A lock taken on an earlier connection went with it.
            keys = [lock_key(uid) for uid, epoch in held if epoch == self.epoch]
            if keys and self.connected:
                assert self._conn is not None
                try:
                    await self._conn.execute(_UNLOCKS, keys)
                except unavailable():
                    pass  # the connection is gone, and the locks with it
        return [None] * len(held)

    async def ping(self, *, within: float) -> bool:
        """Whether the lock connection answers within ``within`` seconds.

        An answer to a lock query within the last ``within`` seconds counts, so the probe
        never waits behind a burst of lock queries. A connection that does not answer is
        closed: the locks on it are as good as gone (PostgreSQL drops them with the session),
        so every executor must take its lock again (``holds``) before it writes, and the
        replica's membership gives its sagas up meanwhile.
        """

        loop = asyncio.get_running_loop()
        if loop.time() - self._answered_at < within and self.connected:
            return True

        async def probe() -> None:
            async with self._guard:
                conn = await self._connection()
                await conn.fetchval("SELECT 1", timeout=within)
                self._answered_at = loop.time()

        failures: tuple[type[BaseException], ...] = (
            TimeoutError,
            DatabaseUnavailableError,
            *unavailable(),
        )
        try:
            await asyncio.wait_for(probe(), timeout=within)
        except failures:
            if self._conn is not None and not self._conn.is_closed():
                self._conn.terminate()
            return False
        return True

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            try:
                self._conn = await asyncpg.connect(self._dsn, timeout=10)
            except unavailable() as error:
                raise DatabaseUnavailableError(str(error)) from error
            self.epoch += 1
        return self._conn
