"""Aggregates and the change feed behind the web UI: counts by phase, what changed lately,
and the backlog of the operator's own outbox.

They sit beside ``reads`` (one saga, one page) because they look at every saga at once, which
the read API's paged queries never do. Each is one statement over ``sagaz_sagas`` (a few
milliseconds for 10,000 rows); the change feed runs one of them per second for all the UI's
open pages together, never one per page.

``updated_at`` is ``now()`` of the journal's transaction, i.e. its start: a transaction that
commits late carries a time the feed may already have passed. The feed therefore re-reads a
window of ``OVERLAP`` before its cursor and drops what it has already seen, by (uid, version).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg

from sagaz_operator.adapters.postgres import outbox, reads
from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError, unavailable
from sagaz_operator.adapters.postgres.reads import SagaFilter

#: How far before the cursor the change feed looks again (see the module docstring).
OVERLAP = timedelta(seconds=5)
#: The most changed sagas one poll reports; a burst beyond it is reported as "more".
MAX_CHANGES = 200


@dataclass(frozen=True, kw_only=True)
class Change:
    uid: str
    namespace: str
    name: str
    definition: str
    phase: str
    version: int
    updated_at: datetime


@dataclass(frozen=True, kw_only=True)
class Changes:
    items: list[Change]
    more: bool  # more than MAX_CHANGES changed: a reader should reload whatever it shows


class Overview:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> Overview:
        """On a pool of two connections: the UI must never compete with the journal."""
        return cls(await asyncpg.create_pool(url, min_size=1, max_size=2))

    async def close(self) -> None:
        await self._pool.close()

    async def phases(self, where: SagaFilter) -> dict[str, int]:
        """How many sagas are in each phase (only the phases that have any), counting, like
        the list, only the newest run of each name unless ``where.all_runs``."""
        clauses, args = reads.filter_clauses(where)
        sql = "SELECT phase, count(*) AS n FROM sagaz_sagas s"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = await self._fetch(sql + " GROUP BY phase", *args)
        return {row["phase"]: row["n"] for row in rows}

    async def latest(self) -> datetime | None:
        """Where a new change feed starts: the newest ``updated_at``."""
        rows = await self._fetch("SELECT max(updated_at) AS at FROM sagaz_sagas")
        value: datetime | None = rows[0]["at"]
        return value

    async def changed_since(self, cursor: datetime) -> Changes:
        """Sagas updated after ``cursor - OVERLAP``, oldest first: the newest ``MAX_CHANGES``.

        The newest, not the oldest: when more sagas changed within the window than one answer
        holds, the pages are told to reload (``more``) and the feed's cursor still moves on to
        the newest change. Reading the oldest ones instead kept the cursor inside the window
        for ever once a burst (or one bulk write) filled it."""
        rows = await self._fetch(
            """SELECT uid, namespace, name, definition_name, phase, version, updated_at
               FROM sagaz_sagas WHERE updated_at > $1 ORDER BY updated_at DESC LIMIT $2""",
            cursor - OVERLAP,
            MAX_CHANGES + 1,
        )
        rows = list(reversed(rows[:MAX_CHANGES])) + rows[MAX_CHANGES:]
        items = [
            Change(
                uid=str(row["uid"]),
                namespace=row["namespace"],
                name=row["name"],
                definition=row["definition_name"],
                phase=row["phase"],
                version=row["version"],
                updated_at=row["updated_at"],
            )
            for row in rows[:MAX_CHANGES]
        ]
        return Changes(items=items, more=len(rows) > MAX_CHANGES)

    async def own_outbox(self) -> outbox.Counts:
        """Pending, oldest pending and dead rows of the operator's own ``sagaz_outbox``."""
        try:
            async with self._pool.acquire() as conn:
                # The proxy forwards every Connection method resolve uses.
                table = await outbox.resolve(cast(asyncpg.Connection, conn), "sagaz_outbox")
                return await outbox.counts(conn, table)
        except unavailable() as error:
            raise DatabaseUnavailableError(f"{type(error).__name__}: {error}") from error

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await reads.fetch(self._pool, sql, *args)
