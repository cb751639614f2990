"""What the saga service needs from the outside, as ports it owns.

The PostgreSQL adapters implement them (``adapters.postgres.journal.Journal``,
``adapters.postgres.locks.SagaLocks``) and translate their driver's errors into the port's
(``sagaz_operator.errors.StoreError`` and below), so the services never know the driver and
the tests can run a saga in memory against fakes, crashing it at points a real process cannot
be stopped at deterministically.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

from sagaz_operator.domain import events as ev
from sagaz_operator.domain.record import SagaRecord, Stored


class SagaStore(Protocol):
    """The journal. Every method may raise ``StoreUnavailableError`` (wait and retry);
    writes raise ``StoreConflictError`` (another writer) and ``UnstorableError``.

    Its methods are declared as returning awaitables (the adapter's are wrapped coroutines).
    """

    def load(self, uid: str) -> Awaitable[Stored | None]: ...

    def start(
        self, record: SagaRecord, *, first: ev.Event, phase: str, finished: bool
    ) -> Awaitable[None]:
        """Record the saga together with its first event, atomically."""
        ...

    def append(
        self,
        record: SagaRecord,
        *,
        version: int,
        events: Sequence[ev.Event],
        phase: str,
        finished: bool,
    ) -> Awaitable[int]:
        """Append ``events`` after ``version``; the new version."""
        ...


class Locks(Protocol):
    """One advisory lock per saga: whoever holds it may write the saga."""

    async def try_acquire(self, uid: str) -> bool: ...

    def holds(self, uid: str) -> bool: ...

    async def release(self, uid: str) -> None: ...
