"""Group commit: the journal appends of many sagas, written by one statement in one transaction.

Each saga's executor appends its transitions one at a time and waits for each to be committed
before it acts on it (write-ahead dispatch). With one transaction per append, N running sagas
cost N commits and N round trips of several statements each; the operator's CPU went to the
driver and the sockets. Here appends that arrive while a commit is running are queued, and
the next commit takes the whole queue (``batches``): no delay is added, and under load the
batches grow by themselves.

Every caller still waits for *its* rows: its ``write`` returns only after the transaction that
holds them has committed, and raises what that transaction raised. One batch is one statement
(data-modifying CTEs over ``unnest`` arrays: records, journal rows, outbox rows, versions), so
it commits as a whole or not at all.

Failures keep their meaning per saga:

- the database is away (connection lost, shutting down...): every caller of the batch gets a
  ``DatabaseUnavailableError`` of its own, and waits and retries as before;
- the statement is refused (a writer with a stale version hits the journal's primary key, a
  record that exists already, a value jsonb refuses): one caller's rows must not fail the
  others', so each write of the batch is tried again alone, and only the guilty one fails.

Fencing is unchanged: the executor checks its advisory lock (``locks.SagaLocks.holds``)
before it hands a write over, as it did before its own transaction, and the journal's primary
key ``(saga_uid, seq)`` is what makes a stale writer fail, per saga, inside the batch. A saga
has at most one write in flight (its executor waits for each), so a batch never holds two
versions of one saga's journal, and the outbox keeps each saga's order (``created_at`` is the
transaction's, then the sequence).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from sagaz_operator.adapters.postgres.batches import Batches
from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError, unavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Write:
    """One saga's part of a commit: its record (when it starts), journal and outbox rows, and
    the version and phase they bring it to."""

    uid: Any  # uuid.UUID
    record: tuple[Any, ...] | None  # namespace, name, definition name/generation/spec, input
    journal: Sequence[tuple[Any, ...]]  # (saga_uid, seq, event_type, event json)
    outbox: Sequence[tuple[Any, ...]]  # (id, aggregate_id, event_type, payload, headers)
    version: int
    phase: str
    finished: bool


_STATEMENT = """
WITH records AS (
    INSERT INTO sagaz_sagas (uid, namespace, name, definition_name, definition_generation,
                             definition, input, phase, version, finished_at)
    SELECT r.uid, r.namespace, r.name, r.definition_name, r.definition_generation,
           r.definition, r.input, r.phase, r.version, CASE WHEN r.finished THEN now() END
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::jsonb[],
                $7::jsonb[], $8::text[], $9::integer[], $10::boolean[])
         AS r(uid, namespace, name, definition_name, definition_generation, definition, input,
              phase, version, finished)
), journal AS (
    INSERT INTO sagaz_journal (saga_uid, seq, event_type, event)
    SELECT * FROM unnest($11::uuid[], $12::integer[], $13::text[], $14::jsonb[])
), outbox AS (
    INSERT INTO sagaz_outbox (id, aggregate_type, aggregate_id, event_type, payload, headers)
    SELECT o.id, 'Saga', o.aggregate_id, o.event_type, o.payload, o.headers
    FROM unnest($15::uuid[], $16::text[], $17::text[], $18::jsonb[], $19::jsonb[])
         AS o(id, aggregate_id, event_type, payload, headers)
)
UPDATE sagaz_sagas AS s
   SET version = u.version, phase = u.phase, updated_at = now(),
       finished_at = CASE WHEN u.finished THEN COALESCE(s.finished_at, now()) ELSE NULL END
  FROM unnest($20::uuid[], $21::integer[], $22::text[], $23::boolean[])
       AS u(uid, version, phase, finished)
 WHERE s.uid = u.uid
"""


def _arguments(writes: Sequence[Write]) -> list[list[Any]]:
    """The statement's 23 arrays: the columns of every write's rows, side by side."""
    records: list[list[Any]] = [[] for _ in range(10)]
    journal: list[list[Any]] = [[] for _ in range(4)]
    outbox: list[list[Any]] = [[] for _ in range(5)]
    updates: list[list[Any]] = [[] for _ in range(4)]
    for write in writes:
        if write.record is not None:  # a new saga: inserted with its version, not updated
            row = (write.uid, *write.record, write.phase, write.version, write.finished)
            for column, value in zip(records, row, strict=True):
                column.append(value)
        else:
            for column, value in zip(
                updates, (write.uid, write.version, write.phase, write.finished), strict=True
            ):
                column.append(value)
        for rows, columns in ((write.journal, journal), (write.outbox, outbox)):
            for row in rows:
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
    return [*records, *journal, *outbox, *updates]


class GroupCommit:
    """Commits queued ``Write``s, everything queued at once, one transaction at a time."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._batches: Batches[Write, None] = Batches(self._commit, name="journal commits")
        self.batches = 0  # commits made, for tests and benchmarks
        self.writes = 0

    async def write(self, write: Write) -> None:
        """Return once ``write`` is committed; raise what its transaction raised.

        Raises the driver's own errors (the journal translates them), except that the callers
        of a batch that failed for an outage get a ``DatabaseUnavailableError`` each. If this
        caller is cancelled before its batch is written, its write is dropped unwritten.
        """
        await self._batches.submit(write)

    async def _commit(self, writes: Sequence[Write]) -> list[BaseException | None]:
        try:
            await self._execute(writes)
        except unavailable() as error:
            return [DatabaseUnavailableError(f"{type(error).__name__}: {error}") for _ in writes]
        except Exception as error:
            if len(writes) == 1:
                return [error]
            # One write's fault (a stale version, a value jsonb refuses) must not fail the
            # others: each is tried alone, so only the guilty one fails.
            logger.debug("a batch of %d journal writes failed (%s); one by one", len(writes), error)
            alone = await asyncio.gather(*(self._commit([one]) for one in writes))
            return [outcome for [outcome] in alone]
        self.batches += 1
        self.writes += len(writes)
        return [None] * len(writes)

    async def _execute(self, writes: Sequence[Write]) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(_STATEMENT, *_arguments(writes))
