"""The diamond as a Temporal workflow: activities for the calls, compensations in code.

This module runs inside the SDK's workflow sandbox (the default runner, kept on), which
re-imports it for every workflow run and refuses modules that import an HTTP client at the
top level. So it imports nothing but ``temporalio`` and the standard library, and calls the
one activity by name (``"call"``, defined in ``bench.systems.temporal``); the workload's step
names come in through ``imports_passed_through``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from bench.workload import COMPENSATED

#: As the operator's default: three attempts; client errors fail at once (non-retryable).
RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
TIMEOUT = timedelta(seconds=30)


@dataclass(frozen=True)
class CallArgs:
    participant: str
    saga: str
    step: str
    purpose: str


@dataclass(frozen=True)
class DiamondArgs:
    participant: str
    saga: str


@workflow.defn(name="Diamond")
class Diamond:
    @workflow.run
    async def run(self, args: DiamondArgs) -> str:
        done: list[str] = []

        async def step(name: str, purpose: str = "action") -> None:
            await workflow.execute_activity(
                "call",
                CallArgs(args.participant, args.saga, name, purpose),
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY,
            )
            if purpose == "action":
                done.append(name)

        try:
            await step("a")
            results = await asyncio.gather(step("b"), step("c"), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            await step("d")
        except ActivityError:
            undo = [s for s in ("b", "c") if s in done]
            await asyncio.gather(*(step(s, "compensation") for s in undo))
            if "a" in done and "a" in COMPENSATED:
                await step("a", "compensation")
            return "Compensated"
        return "Succeeded"
