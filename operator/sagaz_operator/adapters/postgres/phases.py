"""Read-only: the phase each saga's journal has reached, for the resync to compare with
``.status``.

``sagaz_sagas.phase`` is updated in the same transaction as every journal append, so it is
the journal's truth without reading the journal: one indexed lookup per listed uid, in one
query. It runs on a small pool of its own, so a resync never waits behind the executors'
appends (nor they behind it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError, unavailable
from sagaz_operator.domain.convergence import JournaledSaga


class JournalPhases:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> JournalPhases:
        return cls(await asyncpg.create_pool(url, min_size=1, max_size=2))

    async def close(self) -> None:
        await self._pool.close()

    async def phases(self, uids: Sequence[str]) -> dict[str, JournaledSaga]:
        """The journaled phase of each of ``uids`` that the journal knows."""
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(
                    """SELECT uid, phase, finished_at IS NOT NULL AS finished,
                              EXTRACT(EPOCH FROM clock_timestamp() - updated_at)::float8 AS quiet
                       FROM sagaz_sagas WHERE uid = ANY($1::uuid[])""",
                    [uuid.UUID(uid) for uid in uids],
                )
        except unavailable() as error:
            raise DatabaseUnavailableError(f"{type(error).__name__}: {error}") from error
        return {
            str(row["uid"]): JournaledSaga(
                phase=row["phase"], finished=row["finished"], quiet_seconds=row["quiet"]
            )
            for row in rows
        }
