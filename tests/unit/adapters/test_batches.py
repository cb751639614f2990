"""Batches: calls made while one batch runs go together into the next, each caller gets its own
outcome, and nobody waits for ever."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sagaz_operator.adapters.postgres.batches import Batches
from sagaz_operator.errors import StoreUnavailableError


class Doubler:
    """A batch function that answers each item twice its value, and refuses odd ones."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started = asyncio.Event()  # a batch is running
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.started.set()
        await self.release.wait()
        return [ValueError(f"odd {i}") if i % 2 else 2 * i for i in items]


async def test_a_lone_call_runs_at_once_and_gets_its_answer() -> None:
    run = Doubler()
    batches: Batches[int, int] = Batches(run, name="test")

    assert await batches.submit(4) == 8
    assert run.batches == [[4]]


async def test_calls_made_while_a_batch_runs_go_together_into_the_next() -> None:
    run = Doubler()
    run.release.clear()
    batches: Batches[int, int] = Batches(run, name="test")
    first = asyncio.create_task(batches.submit(2))
    await run.started.wait()  # the first batch is running, and waits
    later = [asyncio.create_task(batches.submit(i)) for i in (4, 6, 8)]
    await asyncio.sleep(0)  # they are queued
    run.release.set()

    assert await first == 4
    assert [await task for task in later] == [8, 12, 16]
    assert run.batches == [[2], [4, 6, 8]]


async def test_each_caller_gets_its_own_outcome_and_one_failure_fails_alone() -> None:
    batches: Batches[int, int] = Batches(Doubler(), name="test")

    results = await asyncio.gather(*(batches.submit(i) for i in (2, 3, 4)), return_exceptions=True)

    assert results[0] == 4
    assert results[2] == 8
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "odd 3"


async def test_a_batch_function_that_raises_fails_every_caller_of_that_batch_only() -> None:
    calls = 0

    async def flaky(items: Sequence[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("connection lost")
        return list(items)

    batches: Batches[int, int] = Batches(flaky, name="test")
    results = await asyncio.gather(batches.submit(1), batches.submit(2), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert await batches.submit(3) == 3  # the next batch runs


async def test_a_limit_cuts_the_queue_into_batches_of_that_size() -> None:
    run = Doubler()
    run.release.clear()
    batches: Batches[int, int] = Batches(run, name="test", limit=2)
    tasks = [asyncio.create_task(batches.submit(i)) for i in (0, 2, 4, 6, 8)]
    await asyncio.sleep(0)
    run.release.set()

    assert [await task for task in tasks] == [0, 4, 8, 12, 16]
    assert run.batches == [[0, 2], [4, 6], [8]]


async def test_a_caller_cancelled_before_its_batch_is_left_out_of_it() -> None:
    run = Doubler()
    run.release.clear()
    batches: Batches[int, int] = Batches(run, name="test")
    first = asyncio.create_task(batches.submit(2))
    await run.started.wait()
    gone = asyncio.create_task(batches.submit(4))
    kept = asyncio.create_task(batches.submit(6))
    await asyncio.sleep(0)  # they are queued
    gone.cancel()
    await asyncio.sleep(0)
    run.release.set()

    assert await first == 4
    assert await kept == 12
    assert run.batches == [[2], [6]]


async def test_callers_still_waiting_when_the_batch_task_is_cancelled_get_unavailable() -> None:
    run = Doubler()
    run.release.clear()
    batches: Batches[int, int] = Batches(run, name="stopping")
    waiting = [asyncio.create_task(batches.submit(i)) for i in (2, 4)]
    await run.started.wait()
    later = asyncio.create_task(batches.submit(6))
    await asyncio.sleep(0)  # queued behind the running batch
    [runner] = [task for task in asyncio.all_tasks() if task.get_name() == "stopping"]
    runner.cancel()  # as when the event loop stops

    for task in [*waiting, later]:
        with pytest.raises(StoreUnavailableError, match="stopping stopped"):
            await task
    run.release.set()
    assert await batches.submit(8) == 16  # a new batch task starts for the next call
