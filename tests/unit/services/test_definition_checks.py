"""SagaDefinitions checked from the watch (services.definitions.DefinitionChecks): each on
first sight and on every new generation, not on its own status write; a refused write is
tried again within moments."""

from __future__ import annotations

import asyncio
from typing import Any

from harness import fakes
from sagaz_operator.adapters.kube import ApiError
from sagaz_operator.services.definitions import DefinitionChecks

VALID = {"steps": [{"name": "a", "action": {"http": {"url": "http://a.shop.svc/"}}}]}
CYCLE = {
    "steps": [
        {"name": "a", "dependsOn": ["b"], "action": {"http": {"url": "http://a.shop.svc/"}}},
        {"name": "b", "dependsOn": ["a"], "action": {"http": {"url": "http://b.shop.svc/"}}},
    ]
}


def definition(generation: int, spec: dict[str, Any], **status: Any) -> dict[str, Any]:
    meta = {"uid": "d-1", "namespace": "shop", "name": "orders", "generation": generation}
    return {"metadata": meta, "spec": spec, "status": status}


class RefusingKube(fakes.Kube):
    """Answers the first ``refusals`` status writes 429, as a CRD just installed does, and
    says when a status is written."""

    def __init__(self, refusals: int = 0) -> None:
        super().__init__()
        self.refusals = refusals
        self.wrote = asyncio.Event()

    async def patch_status(
        self, ref: object, status: dict[str, Any], *, resource_version: str | None = None
    ) -> None:
        if self.refusals:
            self.refusals -= 1
            raise ApiError(429, "storage is (re)initializing")
        await super().patch_status(ref, status)
        self.wrote.set()


async def written(kube: RefusingKube, count: int, *, within: float = 5) -> None:
    """Return once ``count`` statuses have been written (the retries take real time)."""
    async with asyncio.timeout(within):
        while len(kube.statuses) < count:
            kube.wrote.clear()
            await kube.wrote.wait()


async def idle() -> None:
    """Let every task that is ready run: the fake API answers without real I/O."""
    for _ in range(20):
        await asyncio.sleep(0)


def ready(kube: fakes.Kube) -> list[tuple[int, str]]:
    """(observedGeneration, Ready's reason) of every status written, in order."""
    return [
        (s["observedGeneration"], next(c["reason"] for c in s["conditions"])) for s in kube.statuses
    ]


async def test_each_generation_is_checked_once_and_its_own_write_not_again() -> None:
    kube = RefusingKube()
    checks = DefinitionChecks(kube, clock=fakes.Clock())  # type: ignore[arg-type]
    checks.observe(None, definition(1, VALID))  # the first list
    await written(kube, 1)
    checks.observe("MODIFIED", definition(1, VALID, observedGeneration=1))  # its own write
    await idle()
    assert len(kube.statuses) == 1
    checks.observe("MODIFIED", definition(2, CYCLE))  # an edit
    await written(kube, 2)
    await checks.close()

    assert ready(kube) == [(1, "Valid"), (2, "Invalid")]
    assert [reason for reason, _, warning in kube.events if warning] == ["InvalidDefinition"]


async def test_a_refused_status_write_is_tried_again_within_moments() -> None:
    kube = RefusingKube(refusals=2)
    checks = DefinitionChecks(kube, clock=fakes.Clock(), retry=(0.01, 0.02))  # type: ignore[arg-type]
    checks.observe("ADDED", definition(1, VALID))
    await written(kube, 1, within=1)  # two pauses of 0.01 and 0.02 s, not a minute
    await checks.close()

    assert ready(kube) == [(1, "Valid")]


async def test_a_newer_generation_replaces_a_check_still_being_tried() -> None:
    kube = RefusingKube(refusals=1)
    checks = DefinitionChecks(kube, clock=fakes.Clock(), retry=(0.01, 0.01))  # type: ignore[arg-type]
    checks.observe("ADDED", definition(1, VALID))
    await idle()  # generation 1 was refused and waits 0.01 s to try again
    assert kube.refusals == 0
    checks.observe("MODIFIED", definition(2, CYCLE))
    await written(kube, 1)
    # Ten of generation 1's retry pauses: had it not been cancelled, it would have written.
    await asyncio.sleep(0.1)
    await checks.close()

    assert ready(kube) == [(2, "Invalid")]


async def test_a_deleted_definition_is_checked_again_if_it_comes_back() -> None:
    kube = RefusingKube()
    checks = DefinitionChecks(kube, clock=fakes.Clock())  # type: ignore[arg-type]
    checks.observe("ADDED", definition(1, VALID))
    await written(kube, 1)
    checks.observe("DELETED", {"metadata": {"uid": "d-1"}})
    checks.observe("ADDED", definition(1, VALID))
    await written(kube, 2)
    await checks.close()

    assert ready(kube) == [(1, "Valid"), (1, "Valid")]
