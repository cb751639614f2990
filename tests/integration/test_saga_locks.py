"""Saga locks against the real PostgreSQL: in a burst each saga learns whether it got its own
advisory lock, the locks are given back in a few statements, and one given back is another's."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from sagaz_operator.adapters.postgres.locks import SagaLocks

pytestmark = pytest.mark.postgres


async def test_in_a_burst_each_saga_gets_its_lock_answer_and_gives_locks_back_in_batches(
    postgres_url: str,
) -> None:
    mine, other = SagaLocks(postgres_url), SagaLocks(postgres_url)  # two operator processes
    uids = [str(uuid.uuid4()) for _ in range(50)]
    try:
        taken_by_other = uids[::5]
        assert await asyncio.gather(*(other.try_acquire(uid) for uid in taken_by_other)) == [
            True
        ] * len(taken_by_other)

        got = await asyncio.gather(*(mine.try_acquire(uid) for uid in uids))

        assert got == [uid not in taken_by_other for uid in uids]
        assert [mine.holds(uid) for uid in uids] == got

        # Given back in a burst, in far fewer statements; then the other process may take them.
        await asyncio.gather(*(mine.release(uid) for uid in uids))
        assert mine.releases.made < len(got) - len(taken_by_other)
        assert not any(mine.holds(uid) for uid in uids)
        rest = [uid for uid in uids if uid not in taken_by_other]
        assert await asyncio.gather(*(other.try_acquire(uid) for uid in rest)) == [True] * len(rest)
    finally:
        await mine.close()
        await other.close()


async def test_locks_of_a_lost_connection_are_not_held_and_are_taken_again(
    postgres_url: str,
) -> None:
    locks = SagaLocks(postgres_url)
    uid = str(uuid.uuid4())
    try:
        assert await locks.try_acquire(uid)
        assert locks._conn is not None
        locks._conn.terminate()  # the database dropped the session, and its locks

        assert not locks.holds(uid)
        await locks.release(uid)  # nothing to give back: no error
        assert await locks.try_acquire(uid)  # on a new connection
        assert locks.holds(uid)
    finally:
        await locks.close()
