"""The journal against the real PostgreSQL: what it refuses, and that a start is atomic.

``domain.storable`` claims to know in advance which values jsonb refuses; here PostgreSQL
itself is the oracle, for hand-picked classes and for Hypothesis-generated hostile values.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagaz_operator.adapters.postgres.journal import Journal
from sagaz_operator.domain import events as ev
from sagaz_operator.domain import storable
from sagaz_operator.domain.model import StepName
from sagaz_operator.domain.record import SagaRecord
from sagaz_operator.errors import StoreConflictError, UnstorableError

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(**overrides: Any) -> SagaRecord:
    fields: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "namespace": "ns",
        "name": "s",
        "definition_name": "d",
        "definition_generation": 1,
        "definition": {"steps": []},
        "input": {},
        **overrides,
    }
    return SagaRecord(**fields)


async def test_start_writes_the_record_with_its_first_event(journal: Journal) -> None:
    saga = record()
    await journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False)

    stored = await journal.load(saga.uid)
    assert stored is not None
    assert stored.journal == [ev.SagaStarted(at=T0)]
    with pytest.raises(StoreConflictError):
        await journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False)


@pytest.mark.parametrize("bad", ["\x00", "a\ud800", "\udfff", float("nan"), float("inf")])
async def test_an_unstorable_record_is_refused_and_leaves_nothing(
    journal: Journal, bad: Any
) -> None:
    saga = record(input={"v": bad})

    with pytest.raises(UnstorableError):
        await journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False)
    assert await journal.load(saga.uid) is None


async def test_an_unstorable_first_event_leaves_no_record_either(journal: Journal) -> None:
    """The record and its verdict are one transaction: no record without its verdict."""
    saga = record()
    first = ev.SagaRejected(at=T0, message="bad \x00")

    with pytest.raises(UnstorableError):
        await journal.start(saga, first=first, phase="Failed", finished=True)
    assert await journal.load(saga.uid) is None


async def test_an_unstorable_append_is_refused_not_reported_as_an_outage(
    journal: Journal,
) -> None:
    saga = record()
    await journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False)
    succeeded = ev.StepSucceeded(at=T0, step=StepName("a"), attempt=1, output={"v": "\x00"})

    with pytest.raises(UnstorableError):
        await journal.append(saga, version=1, events=[succeeded], phase="Running", finished=False)
    stored = await journal.load(saga.uid)
    assert stored is not None
    assert len(stored.journal) == 1


HOSTILE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=6)
    | st.sampled_from(["\x00", "\ud800", "\udc00x", "\ud83d\ude00"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


async def test_storable_agrees_with_postgres(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    agreed = 0
    try:
        values: list[Any] = []

        @settings(
            max_examples=300,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(HOSTILE)
        def collect(value: Any) -> None:
            values.append(value)

        collect()
        for value in values:
            predicted = storable.problem(value, path="v") is None
            try:
                await conn.execute("SELECT $1::jsonb", json.dumps(value))
                accepted = True
            except (asyncpg.DataError, asyncpg.ProgramLimitExceededError):
                accepted = False
            # A surrogate *pair* written as two code points is the one value PostgreSQL takes
            # that storable refuses; JSON parsers never produce one, so refusing it is safe.
            if not predicted and accepted:
                assert "surrogate" in str(storable.problem(value, path="v")), value
                continue
            assert predicted == accepted, value
            agreed += 1
    finally:
        await conn.close()
    assert agreed > 200
