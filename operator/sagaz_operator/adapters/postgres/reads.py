"""Read-only queries behind the HTTP read API: saga lists, one saga, its journal and outbox.

Every list is paged by a keyset (the last row's sort key), never by ``OFFSET``, so page 500
of 10,000 sagas costs what page 1 costs: an index range scan (``sagaz_sagas_listing``, the
journal's primary key ``(saga_uid, seq)``).

A saga's outbox rows are found by primary key, not by scanning ``aggregate_id`` (which has no
index: one more index on the hottest insert path is not worth a read-only view): the journal
names each row ``uuid5(saga uid, seq)``, so the rows of journal entries ``after+1...`` are
exactly those ids.

Nothing here reads a secret: the journal and the definition snapshot hold ``secretKeyRef``
names, never values (participants resolve them at call time).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError, unavailable
from sagaz_operator.domain.model import Json

#: The most rows one page may have, whatever the client asks for.
MAX_PAGE = 500

#: A listed saga with its progress and start, read from the first rows of its journal (by the
#: journal's primary key, for the page's rows only).
_LISTED = """SELECT s.uid, s.namespace, s.name, s.definition_name, s.definition_generation,
    s.phase, s.version, s.created_at, s.updated_at, s.finished_at,
    jsonb_array_length(CASE jsonb_typeof(s.definition -> 'steps')
        WHEN 'array' THEN s.definition -> 'steps' ELSE '[]' END) AS step_count,
    (SELECT count(DISTINCT j.event ->> 'step') FROM sagaz_journal j
        WHERE j.saga_uid = s.uid AND j.event_type = 'StepSucceeded') AS succeeded,
    (SELECT (j.event ->> 'at')::timestamptz FROM sagaz_journal j
        WHERE j.saga_uid = s.uid AND j.event_type = 'SagaStarted' LIMIT 1) AS started_at
    FROM sagaz_sagas s"""

#: No later run of the same name (an index probe on sagaz_sagas_listing per row).
_NEWEST = """NOT EXISTS (SELECT 1 FROM sagaz_sagas later
    WHERE later.namespace = s.namespace AND later.name = s.name
    AND (later.created_at, later.uid) > (s.created_at, s.uid))"""


@dataclass(frozen=True, kw_only=True)
class SagaFilter:
    namespace: str | None = None
    phase: str | None = None
    definition: str | None = None
    all_runs: bool = False  # also the earlier runs of a name (deleted, created again)


@dataclass(frozen=True, kw_only=True)
class Key:
    """Where a page of sagas ends: the sort key of its last row."""

    namespace: str
    name: str
    created_at: datetime
    uid: str


@dataclass(frozen=True, kw_only=True)
class SagaRow:
    uid: str
    namespace: str
    name: str
    definition_name: str
    definition_generation: int
    phase: str
    version: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    progress: str | None = None  # "succeeded/steps", in lists only
    started_at: datetime | None = None  # in lists only


@dataclass(frozen=True, kw_only=True)
class SagaDetail:
    row: SagaRow
    definition: dict[str, Json]
    input: Json


@dataclass(frozen=True, kw_only=True)
class JournalEntry:
    seq: int
    recorded_at: datetime
    event: dict[str, Json]


@dataclass(frozen=True, kw_only=True)
class OutboxEntry:
    seq: int
    id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    published_at: datetime | None


class Reads:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> Reads:
        """On a small pool of its own: readers never starve the journal's writers."""
        return cls(await asyncpg.create_pool(url, min_size=1, max_size=4))

    async def close(self) -> None:
        await self._pool.close()

    async def sagas(
        self, where: SagaFilter, *, limit: int, after: Key | None = None
    ) -> list[SagaRow]:
        """Sagas ordered by (namespace, name, created_at, uid), the page after the key ``after``.

        Only the newest run of each name, unless ``where.all_runs``: the journal keeps sagas
        that were deleted (and perhaps created again under the same name).
        """
        clauses, args = filter_clauses(where)

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if after is not None:
            keys = (
                arg(after.namespace),
                arg(after.name),
                arg(after.created_at),
                arg(_uuid(after.uid)),
            )
            clauses.append(f"(s.namespace, s.name, s.created_at, s.uid) > ({', '.join(keys)})")
        sql = _LISTED
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY s.namespace, s.name, s.created_at, s.uid LIMIT {arg(_page(limit))}"
        rows = await self._fetch(sql, *args)
        return [_saga_row(row) for row in rows]

    async def saga(self, namespace: str, name: str, uid: str | None = None) -> SagaDetail | None:
        """The saga of that name (the newest, if it was deleted and created again), or None."""
        if uid is not None:
            rows = await self._fetch(
                "SELECT * FROM sagaz_sagas WHERE namespace = $1 AND name = $2 AND uid = $3",
                namespace,
                name,
                _uuid(uid),
            )
        else:
            rows = await self._fetch(
                """SELECT * FROM sagaz_sagas WHERE namespace = $1 AND name = $2
                   ORDER BY created_at DESC LIMIT 1""",
                namespace,
                name,
            )
        if not rows:
            return None
        row = rows[0]
        return SagaDetail(
            row=_saga_row(row),
            definition=json.loads(row["definition"]),
            input=json.loads(row["input"]),
        )

    async def journal(self, uid: str, *, after: int = 0, limit: int) -> list[JournalEntry]:
        """Journal entries ``after+1...`` in order."""
        rows = await self._fetch(
            """SELECT seq, recorded_at, event FROM sagaz_journal
               WHERE saga_uid = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
            _uuid(uid),
            after,
            _page(limit),
        )
        return [
            JournalEntry(seq=r["seq"], recorded_at=r["recorded_at"], event=json.loads(r["event"]))
            for r in rows
        ]

    async def outbox(
        self, uid: str, *, version: int, after: int = 0, limit: int
    ) -> list[OutboxEntry]:
        """The outbox rows of journal entries ``after+1...`` (of ``version``), in order."""
        saga = _uuid(uid)
        seqs = list(range(after + 1, min(version, after + _page(limit)) + 1))
        ids = {uuid.uuid5(saga, str(seq)): seq for seq in seqs}
        rows = await self._fetch(
            """SELECT id, event_type, status, attempts, last_error, created_at, published_at
               FROM sagaz_outbox WHERE id = ANY($1::uuid[])""",
            list(ids),
        )
        entries = [
            OutboxEntry(
                seq=ids[r["id"]],
                id=str(r["id"]),
                event_type=r["event_type"],
                status=r["status"],
                attempts=r["attempts"],
                last_error=r["last_error"],
                created_at=r["created_at"],
                published_at=r["published_at"],
            )
            for r in rows
        ]
        return sorted(entries, key=lambda entry: entry.seq)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await fetch(self._pool, sql, *args)


async def fetch(pool: asyncpg.Pool, sql: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of one read; a lost or refused connection is ``DatabaseUnavailableError``."""
    try:
        async with pool.acquire() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows
    except unavailable() as error:
        raise DatabaseUnavailableError(f"{type(error).__name__}: {error}") from error


def filter_clauses(where: SagaFilter) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``sagaz_sagas s`` for ``where``, and their numbered arguments."""
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("namespace", where.namespace),
        ("phase", where.phase),
        ("definition_name", where.definition),
    ):
        if value:
            args.append(value)
            clauses.append(f"s.{column} = ${len(args)}")
    if not where.all_runs:
        clauses.append(_NEWEST)
    return clauses, args


class NotAUidError(ValueError):
    """A uid in a request is not a UUID."""


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotAUidError(f"not a saga uid: {text!r}") from None


def _page(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


def _saga_row(row: asyncpg.Record) -> SagaRow:
    return SagaRow(
        uid=str(row["uid"]),
        namespace=row["namespace"],
        name=row["name"],
        definition_name=row["definition_name"],
        definition_generation=row["definition_generation"],
        phase=row["phase"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        progress=(
            f"{row['succeeded']}/{row['step_count']}" if row.get("succeeded") is not None else None
        ),
        started_at=row.get("started_at"),
    )
