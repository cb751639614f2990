"""Calls that arrive while one is running are made together, by the next one.

A burst of sagas asks PostgreSQL the same small things at once: load its journal, commit its
transition, give its lock back. One statement each costs a round trip, a socket write and a
server wake-up per saga; what the operator spent its CPU on. (Taking the locks is not batched,
on purpose: ``locks`` says why.) ``Batches`` queues the calls
instead and hands everything queued to one statement: no delay is added (a call that arrives
while nothing runs is made at once) and under load the batches grow by themselves.

Each caller still gets *its* answer, or its own failure: the batch function returns one
outcome per item, a value or an exception, so one item's fault does not fail the others. An
exception the batch function raises is every caller's. If the batch's task is cancelled (the
event loop stops), every caller still waiting gets ``DatabaseUnavailableError``: nobody waits
forever. A caller cancelled before its batch ran is left out of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batches(Generic[Item, Result]):
    """One batch at a time, of everything queued meanwhile (at most ``limit`` items)."""

    def __init__(
        self,
        run: Callable[[Sequence[Item]], Awaitable[Sequence[Result | BaseException]]],
        *,
        name: str,
        limit: int | None = None,
    ) -> None:
        self._run = run
        self._name = name
        self._limit = limit
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.made = 0  # batches run, for tests and benchmarks

    async def submit(self, item: Item) -> Result:
        """``item``'s outcome: returned, or raised."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run_queued(), name=self._name)
        return await future

    async def _run_queued(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._queue:
                waiting = [call for call in self._queue if not call[1].done()]
                cut = len(waiting) if self._limit is None else self._limit
                batch, self._queue = waiting[:cut], waiting[cut:]
                if batch:
                    await self._settle(batch)
                batch = []
        except BaseException as error:  # cancelled: the event loop stops
            for _, future in [*batch, *self._queue]:
                if not future.done():
                    stopped = DatabaseUnavailableError(f"{self._name} stopped: {error!r}")
                    future.set_exception(stopped)
            self._queue = []
            raise
        finally:
            self._runner = None

    async def _settle(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        self.made += 1
        try:
            outcomes = await self._run([item for item, _ in batch])
        except Exception as error:
            outcomes = [error] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
