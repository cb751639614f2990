"""Group commit against the real PostgreSQL: appends of many sagas share transactions, each
caller returns only once its own rows are committed, and one bad write fails alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from sagaz_operator.adapters.postgres.journal import Journal
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import StepName
from sagaz_operator.domain.record import SagaRecord
from sagaz_operator.errors import StoreConflictError, UnstorableError

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A = StepName("a")


def record() -> SagaRecord:
    return SagaRecord(
        uid=str(uuid.uuid4()),
        namespace="ns",
        name="s",
        definition_name="d",
        definition_generation=1,
        definition={"steps": []},
        input={},
    )


async def committed(db: asyncpg.Pool, uid: str) -> tuple[int, int, int]:
    """What another session sees of a saga: journal rows, outbox rows, recorded version."""
    key = uuid.UUID(uid)
    journal = await db.fetchval("SELECT count(*) FROM sagaz_journal WHERE saga_uid = $1", key)
    outbox = await db.fetchval("SELECT count(*) FROM sagaz_outbox WHERE aggregate_id = $1", uid)
    version = await db.fetchval("SELECT version FROM sagaz_sagas WHERE uid = $1", key)
    return journal, outbox, version


async def test_concurrent_appends_share_transactions_and_return_once_committed(
    journal: Journal, postgres_url: str
) -> None:
    db = await asyncpg.create_pool(postgres_url, min_size=1, max_size=10)
    sagas = [record() for _ in range(40)]
    seen: list[tuple[int, int, int]] = []

    async def one(saga: SagaRecord) -> None:
        await journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False)
        seen.append(await committed(db, saga.uid))
        events = [
            ev.StepDispatched(at=T0, step=A, attempt=1),
            ev.StepSucceeded(at=T0, step=A, attempt=1, output={"n": 1}),
        ]
        version = await journal.append(
            saga, version=1, events=events, phase="Succeeded", finished=True
        )
        assert version == 3
        seen.append(await committed(db, saga.uid))

    await asyncio.gather(*(one(saga) for saga in sagas))

    # Another session saw each caller's rows as soon as its call returned.
    assert sorted(seen) == [(1, 1, 1)] * 40 + [(3, 3, 3)] * 40
    for saga in sagas:
        stored = await journal.load(saga.uid)
        assert stored is not None
        assert [type(e) for e in stored.journal] == [
            ev.SagaStarted,
            ev.StepDispatched,
            ev.StepSucceeded,
        ]
    assert await db.fetchval(
        "SELECT count(*) FROM sagaz_sagas WHERE uid = ANY($1) AND finished_at IS NOT NULL",
        [uuid.UUID(s.uid) for s in sagas],
    ) == len(sagas)
    # 80 writes in far fewer transactions (one each before group commit).
    commits = journal.commits
    assert commits.writes == 80
    assert commits.batches < 40
    await db.close()


async def test_a_stale_writer_and_an_unstorable_value_fail_alone_in_their_batch(
    journal: Journal,
) -> None:
    stale, fine, bad = record(), record(), record()
    for saga in (stale, fine, bad):
        await journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False)
    dispatched = [ev.StepDispatched(at=T0, step=A, attempt=1)]
    await journal.append(stale, version=1, events=dispatched, phase="Running", finished=False)
    batches = journal.commits.batches

    results = await asyncio.gather(
        journal.append(stale, version=1, events=dispatched, phase="Running", finished=False),
        journal.append(fine, version=1, events=dispatched, phase="Running", finished=False),
        journal.append(
            bad,
            version=1,
            events=[ev.StepSucceeded(at=T0, step=A, attempt=1, output={"v": "\x00"})],
            phase="Running",
            finished=False,
        ),
        return_exceptions=True,
    )

    assert isinstance(results[0], StoreConflictError)
    assert results[1] == 2
    assert isinstance(results[2], UnstorableError)
    loaded = await journal.load(fine.uid)
    assert loaded is not None
    assert len(loaded.journal) == 2
    for saga, length in ((stale, 2), (bad, 1)):
        kept = await journal.load(saga.uid)
        assert kept is not None
        assert len(kept.journal) == length
    assert journal.commits.batches == batches + 1  # only the fine one landed


async def test_a_second_start_of_one_saga_is_a_conflict_in_a_batch_too(journal: Journal) -> None:
    saga, other = record(), record()
    await journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False)

    results = await asyncio.gather(
        journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False),
        journal.start(other, first=ev.SagaStarted(at=T0), phase="Running", finished=False),
        return_exceptions=True,
    )

    assert isinstance(results[0], StoreConflictError)
    assert "recorded already" in str(results[0])
    assert results[1] is None
    assert await journal.load(other.uid) is not None


async def test_loads_made_together_are_one_statement_and_a_broken_journal_fails_alone(
    journal: Journal, postgres_url: str
) -> None:
    sagas = [record() for _ in range(30)]
    for saga in sagas:
        await journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False)
    broken = sagas[7]
    db = await asyncpg.connect(postgres_url)
    await db.execute(
        "INSERT INTO sagaz_journal (saga_uid, seq, event_type, event) VALUES ($1, 2, 'X', $2)",
        uuid.UUID(broken.uid),
        '{"type": "NoSuchEvent"}',
    )
    await db.close()
    missing = str(uuid.uuid4())
    made = journal.loads.made

    results = await asyncio.gather(
        *(journal.load(saga.uid) for saga in sagas), journal.load(missing), return_exceptions=True
    )

    assert journal.loads.made - made < len(results)  # 31 loads in fewer statements
    *loads, unrecorded = results
    assert unrecorded is None
    assert isinstance(loads[7], KeyError)  # its own decoding error: no such event type
    for saga, loaded in zip(sagas, loads, strict=True):
        if saga is broken:
            continue
        assert not isinstance(loaded, BaseException)
        assert loaded is not None
        assert loaded.record == saga  # each caller got its own saga
        assert [type(e) for e in loaded.journal] == [ev.SagaStarted]


async def test_outbox_ids_are_the_uuid5_of_the_saga_and_sequence(
    journal: Journal, postgres_url: str
) -> None:
    """The outbox contract (README, "Saga events"): a consumer drops duplicates by id."""
    saga = record()
    await journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False)
    events = [
        ev.StepDispatched(at=T0, step=A, attempt=1),
        ev.StepSucceeded(at=T0, step=A, attempt=1, output=None),
    ]
    await journal.append(saga, version=1, events=events, phase="Running", finished=False)
    db = await asyncpg.connect(postgres_url)
    rows = await db.fetch(
        "SELECT id, (headers->>'sequence')::int AS seq FROM sagaz_outbox WHERE aggregate_id = $1",
        saga.uid,
    )
    await db.close()

    assert sorted(row["seq"] for row in rows) == [1, 2, 3]
    for row in rows:
        assert row["id"] == uuid.uuid5(uuid.UUID(saga.uid), str(row["seq"]))
