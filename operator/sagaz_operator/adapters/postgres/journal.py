"""The saga journal: one row per event, appended with its outbox event in one transaction.

``start`` writes the saga's record together with its first event (the start verdict), so no
reader ever finds a record without a verdict. ``append`` writes the events at sequence
numbers ``version+1...``; the primary key ``(saga_uid, seq)`` makes a second writer holding a
stale version fail instead of forking the history (the advisory lock in ``locks`` normally
keeps it from trying at all). Both are group-committed with other sagas' writes
(``commits``): each returns once its own rows are committed, and fails alone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import asyncpg

from sagaz_operator.adapters.postgres.batches import Batches
from sagaz_operator.adapters.postgres.commits import GroupCommit, Write
from sagaz_operator.adapters.postgres.errors import (
    DatabaseUnavailableError,
    unavailable,
    unstorable,
)
from sagaz_operator.domain import codec
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.record import SagaRecord, Stored
from sagaz_operator.errors import StoreConflictError, UnstorableError

P = ParamSpec("P")
T = TypeVar("T")


__all__ = ["Journal", "JournalConflictError", "SagaRecord", "Stored"]


#: The most sagas one load statement reads (a burst of starts, every saga at a restart).
LOAD_BATCH = 200

_LOAD = """SELECT s.*, (SELECT COALESCE(jsonb_agg(j.event ORDER BY j.seq), '[]')
                      FROM sagaz_journal j WHERE j.saga_uid = s.uid) AS events
             FROM sagaz_sagas s WHERE s.uid = ANY($1::uuid[])"""


class JournalConflictError(StoreConflictError):
    """Someone else appended to this saga's journal: this writer's view is stale."""


def _guarded(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Translate the driver's errors into the store port's (``sagaz_operator.errors``)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except unavailable() as error:
            raise DatabaseUnavailableError(f"{type(error).__name__}: {error}") from error
        except unstorable() as error:
            # The statement, not the database, is at fault: retrying it would fail for ever.
            message = str(error).splitlines()[0][:300]
            raise UnstorableError(f"{type(error).__name__}: {message}") from error

    return wrapper


class _StatelessConnection(asyncpg.Connection):
    """A pooled connection that is returned without the reset query.

    asyncpg resets every connection it takes back (advisory locks, cursors, LISTEN, settings:
    one more round trip and commit per use). The journal's connections hold no session state
    (the advisory locks live on ``locks``' own connection), and an open transaction is still
    rolled back, so there is nothing to reset.
    """

    def get_reset_query(self) -> str:
        return ""


class Journal:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._commits = GroupCommit(pool)
        self._loads: Batches[str, Stored | None] = Batches(
            self._load, name="journal loads", limit=LOAD_BATCH
        )

    @property
    def loads(self) -> Batches[str, Stored | None]:
        """The batched loads: how many statements read how many sagas."""
        return self._loads

    @property
    def commits(self) -> GroupCommit:
        """The group committer: how many writes it made in how many transactions."""
        return self._commits

    @classmethod
    async def open(cls, url: str) -> Journal:
        """A journal on its own connection pool; ``close`` it when done."""
        pool = await asyncpg.create_pool(
            url, min_size=2, max_size=20, connection_class=_StatelessConnection
        )
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    @_guarded
    async def load(self, uid: str) -> Stored | None:
        """The saga's record and journal, or ``None`` if it was never recorded.

        Loads that arrive together are read by one statement (``batches``).
        """
        return await self._loads.submit(str(uuid.UUID(uid)))

    async def _load(self, uids: Sequence[str]) -> list[Stored | BaseException | None]:
        # One statement, so each record and its journal come from one snapshot, in one trip.
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_LOAD, [uuid.UUID(uid) for uid in uids])
        found = {str(row["uid"]): row for row in rows}
        return [_stored(uid, found.get(uid)) for uid in uids]

    @_guarded
    async def start(
        self, record: SagaRecord, *, first: ev.Event, phase: str, finished: bool
    ) -> None:
        """Record the saga, its definition snapshot and its first event, in one transaction.

        Raises ``JournalConflictError`` if the saga was recorded already.
        """
        snapshot = (
            record.namespace,
            record.name,
            record.definition_name,
            record.definition_generation,
            json.dumps(record.definition),
            json.dumps(record.input),
        )
        await self._write(
            _write(record, snapshot, version=0, events=[first], phase=phase, finished=finished)
        )

    @_guarded
    async def append(
        self,
        record: SagaRecord,
        *,
        version: int,
        events: Sequence[ev.Event],
        phase: str,
        finished: bool,
    ) -> int:
        """Append ``events`` after ``version`` with one outbox row each; returns the new version.

        It is committed together with the appends of other sagas that arrive meanwhile
        (``commits``), and returns once it is committed.
        """
        await self._write(
            _write(record, None, version=version, events=events, phase=phase, finished=finished)
        )
        return version + len(events)

    async def _write(self, write: Write) -> None:
        try:
            await self._commits.write(write)
        except asyncpg.UniqueViolationError as error:
            if write.record is not None:  # its journal's first row is taken with it
                raise JournalConflictError(f"saga {write.uid} was recorded already") from error
            raise JournalConflictError(
                f"saga {write.uid}: journal moved past {write.version - len(write.journal)}"
            ) from error


def _stored(uid: str, row: asyncpg.Record | None) -> Stored | BaseException | None:
    """One saga's record and journal from its row; what fails to decode fails its load alone."""
    if row is None:
        return None
    try:
        return Stored(
            record=SagaRecord(
                uid=uid,
                namespace=row["namespace"],
                name=row["name"],
                definition_name=row["definition_name"],
                definition_generation=row["definition_generation"],
                definition=json.loads(row["definition"]),
                input=json.loads(row["input"]),
            ),
            journal=[codec.decode(event) for event in json.loads(row["events"])],
        )
    except Exception as error:
        return error


def _write(
    record: SagaRecord,
    snapshot: tuple[Any, ...] | None,
    *,
    version: int,
    events: Sequence[ev.Event],
    phase: str,
    finished: bool,
) -> Write:
    saga_uid = uuid.UUID(record.uid)
    journal_rows = []
    outbox_rows = []
    for offset, event in enumerate(events, start=1):
        body = codec.encode(event)
        journal_rows.append((saga_uid, version + offset, body["type"], json.dumps(body)))
        outbox_rows.append(_outbox_row(record, event, seq=version + offset))
    return Write(
        uid=saga_uid,
        record=snapshot,
        journal=journal_rows,
        outbox=outbox_rows,
        version=version + len(events),
        phase=phase,
        finished=finished,
    )


def _outbox_row(record: SagaRecord, event: ev.Event, *, seq: int) -> tuple[Any, ...]:
    payload = codec.public_payload(
        event,
        saga_name=record.name,
        namespace=record.namespace,
        definition=record.definition_name,
    )
    headers = {"sequence": seq, "sagaUid": record.uid}
    return (
        _event_id(record.uid, seq),
        record.uid,
        codec.public_type(event),
        json.dumps(payload),
        json.dumps(headers),
    )


def _event_id(saga_uid: str, seq: int) -> uuid.UUID:
    """``uuid5(saga uid, str(seq))``: derived from (saga, seq), so a retried transaction can
    never publish twice. Computed as ``uuid.uuid5`` does, without parsing the uid per row."""
    digest = hashlib.sha1(_uid_bytes(saga_uid) + str(seq).encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=5)


@functools.lru_cache(maxsize=4096)
def _uid_bytes(uid: str) -> bytes:
    return uuid.UUID(uid).bytes
