"""The intake runs executors only for the sagas this replica owns, and hands them over when
ownership changes: started from the last body seen, stopped like a deletion (no compensation)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from sagaz_operator.services import intake as intake_module
from sagaz_operator.services.executor import Controls, Stopped
from sagaz_operator.services.intake import Intake


def saga(uid: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": f"s-{uid}", "namespace": "ns"}, "spec": spec}


class Executors:
    """Stands in for ``sagas.run``: records each start and runs until stopped."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.live: set[str] = set()

    async def run(
        self, runtime: Any, *, body: Mapping[str, Any], controls: Controls, stopped: Stopped
    ) -> None:
        uid = body["metadata"]["uid"]
        self.started.append(uid)
        self.live.add(uid)
        try:
            await stopped.wait()  # type: ignore[attr-defined]
        finally:
            self.live.discard(uid)
            self.stopped.append(uid)


@pytest.fixture
def executors(monkeypatch: pytest.MonkeyPatch) -> Executors:
    fake = Executors()
    monkeypatch.setattr(intake_module.sagas, "run", fake.run)
    return fake


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_saga_another_replica_owns_gets_no_executor(executors: Executors) -> None:
    mine = {"u1"}
    intake = Intake(None, owns=mine.__contains__)  # type: ignore[arg-type]
    intake.observe(None, saga("u1"))
    intake.observe(None, saga("u2"))
    intake.observe("MODIFIED", saga("u2", suspend=True))
    await settle()

    assert executors.started == ["u1"]
    assert intake.running == 1
    await intake.stop()


async def test_ownership_moves_start_and_stop_executors_from_the_last_body(
    executors: Executors,
) -> None:
    mine = {"u1"}
    intake = Intake(None, owns=lambda uid: uid in mine)  # type: ignore[arg-type]
    intake.observe(None, saga("u1"))
    intake.observe(None, saga("u2"))
    intake.observe("MODIFIED", saga("u2", suspend=True))
    await settle()

    mine.clear()
    mine.add("u2")
    intake.rebalance()
    await settle()

    assert executors.stopped == ["u1"]
    assert executors.live == {"u2"}
    assert intake._running["u2"].controls.suspend  # the latest body, not the first

    mine.add("u1")  # back again: started from its body
    intake.rebalance()
    await settle()
    assert executors.live == {"u1", "u2"}
    await intake.stop()


async def test_a_deleted_unowned_saga_is_forgotten(executors: Executors) -> None:
    mine: set[str] = set()
    intake = Intake(None, owns=lambda uid: uid in mine)  # type: ignore[arg-type]
    intake.observe(None, saga("u1"))
    intake.observe("DELETED", saga("u1"))
    mine.add("u1")
    intake.rebalance()
    await settle()

    assert executors.started == []


async def test_a_saga_that_comes_back_while_it_stops_is_started_again(
    executors: Executors,
) -> None:
    mine = {"u1"}
    intake = Intake(None, owns=lambda uid: uid in mine)  # type: ignore[arg-type]
    intake.observe(None, saga("u1"))
    await settle()

    mine.clear()
    intake.rebalance()  # handed over: its executor is stopping
    mine.add("u1")
    intake.observe("MODIFIED", saga("u1", suspend=True))  # an event while it stops
    await settle()

    assert executors.started == ["u1", "u1"]
    assert executors.live == {"u1"}
    await intake.stop()
