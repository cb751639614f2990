"""The ``sagaz`` library from PyPI: the in-process engine this project grew from.

In memory, not durable: a crash loses every running saga (its default storage), which is
why it is no peer of the operator on guarantees, only on cost. Steps call the participant
with aiohttp. ``max_retries=0`` everywhere: the library retries any exception, and the
only failure in the workload (d's 400) must fail for good at once, as elsewhere. Its logging
listener is silenced (WARNING and above only), or it would print every step.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import sagaz

from bench import clients
from bench.figures import Run
from bench.workload import COMPENSATED, DEPENDS, STEPS, Call, Variant, path

Fn = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


class SagazLibrary:
    name = "sagaz library (in memory)"

    def __init__(self, *, participant_url: str) -> None:
        self._participant = participant_url
        self._client: clients.Poster | None = None

    async def start(self) -> None:
        logging.getLogger("sagaz").setLevel(logging.CRITICAL)
        self._client = clients.AiohttpPoster()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    def _fn(self, saga: str, step: str, purpose: str) -> Fn:
        async def call(_: dict[str, Any]) -> dict[str, Any]:
            assert self._client is not None
            await self._client.post(
                Call(self._participant + path(step, purpose), saga, step, purpose)
            )
            return {}

        return call

    async def run(self, *, n: int, variant: Variant) -> Run:
        batch = uuid.uuid4().hex[:8]
        run = Run(system=self.name, variant=variant, n=n, started=time.monotonic())

        async def one(index: int) -> None:
            name = f"sagaz-{batch}-{index}"
            saga = sagaz.Saga(name=name)
            for step in STEPS:
                undo = self._fn(name, step, "compensation") if step in COMPENSATED else None
                saga.add_step(
                    step,
                    self._fn(name, step, "action"),
                    undo,
                    depends_on=list(DEPENDS[step]),
                    max_retries=0,
                )
            try:
                await saga.run({"orderId": name})
                run.outcomes[name] = "Succeeded"
            except Exception:
                run.outcomes[name] = "Compensated"
            run.finished[name] = time.monotonic()

        await asyncio.gather(*(one(i) for i in range(n)))
        return run
