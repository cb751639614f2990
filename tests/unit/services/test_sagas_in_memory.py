"""The saga service and its executor in memory, crashed at points no e2e test can hit.

The ports are fakes (``harness.fakes``): a store that journals through the codec and JSON and
refuses what PostgreSQL refuses, locks always granted, a Kubernetes API in memory. A ``Crash``
is the process dying at that exact point; the next ``run`` is the restarted operator.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness import fakes
from harness.fakes import SHOP, Crash, Fault
from sagaz_operator.adapters.kube import resource_path
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.record import SagaRecord
from sagaz_operator.errors import StoreUnavailableError, UnstorableError
from sagaz_operator.services import executor, sagas
from sagaz_operator.services.executor import Controls
from sagaz_operator.services.statuses import StatusOutbox

UID = "6f1c1d2e-0000-4000-8000-000000000001"


class World:
    def __init__(self) -> None:
        self.store = fakes.MemoryStore()
        self.kube = fakes.Kube()
        self.runner = fakes.Runner()
        self.outbox = StatusOutbox(kube=self.kube)  # type: ignore[arg-type]
        self.runtime = sagas.SagaRuntime(
            kube=self.kube,  # type: ignore[arg-type]
            journal=self.store,
            locks=fakes.Locks(),
            runner=self.runner,  # type: ignore[arg-type]
            clock=fakes.Clock(),
            outbox=self.outbox,
            status_interval=0.0,
            crash_backoff=(0.0,),
        )
        self.define("shop", SHOP)

    def define(self, name: str, spec: dict[str, Any]) -> None:
        path = resource_path("sagaz.io/v1alpha1", "sagadefinitions", "ns", name)
        self.kube.objects[path] = {"metadata": {"name": name, "generation": 1}, "spec": spec}

    def body(self, **spec: Any) -> dict[str, Any]:
        return {
            "metadata": {"uid": UID, "namespace": "ns", "name": "s1", "generation": 1},
            "spec": {"definitionRef": {"name": "shop"}, **spec},
        }

    async def run(self, body: dict[str, Any], stopped: asyncio.Event | None = None) -> None:
        await asyncio.wait_for(
            sagas.run(
                self.runtime, body=body, controls=Controls(), stopped=stopped or asyncio.Event()
            ),
            timeout=10,
        )
        await self.outbox.close(grace=10)  # the final status and Event are written by now

    def types(self) -> list[str]:
        return [type(event).__name__ for event in self.store.events(UID)]

    def phase(self) -> str:
        return str(self.status()["phase"])

    def status(self) -> dict[str, Any]:
        """The last status the executor wrote (health reports carry only a condition)."""
        return next(s for s in reversed(self.kube.statuses) if "phase" in s)


async def test_a_saga_runs_to_the_end_in_memory() -> None:
    world = World()
    await world.run(world.body())

    assert world.types()[0] == "SagaStarted"
    assert world.types()[-1] == "SagaFinished"
    assert world.phase() == "Succeeded"
    assert world.store.calls[:2] == ["load", "start"]  # record and verdict: one write


class TestTheStartVerdictIsAtomic:
    async def test_a_crash_while_recording_leaves_nothing_and_the_rerun_rejects(self) -> None:
        world = World()
        body = world.body(definitionRef={"name": "missing"})
        world.store.faults["start"].append(Fault(Crash()))

        with pytest.raises(Crash):
            await world.run(body)
        assert UID not in world.store.records  # no record without its verdict
        await world.run(body)

        assert world.types() == ["SagaRejected"]
        assert world.phase() == "Failed"
        assert "SagaDefinition 'missing' not found" in world.status()["message"]
        assert world.runner.calls == []

    async def test_a_crash_right_after_the_start_resumes_from_the_verdict(self) -> None:
        world = World()
        world.store.faults["start"].append(Fault(Crash(), after_write=True))

        with pytest.raises(Crash):
            await world.run(world.body())
        await world.run(world.body())

        assert world.types().count("SagaStarted") == 1
        assert world.phase() == "Succeeded"

    @pytest.mark.parametrize(
        ("definition", "saga_input", "message"),
        [
            ({}, {}, "SagaDefinition 'shop' could not be resolved when the saga started"),
            (
                {**SHOP, "inputSchema": {"type": "object", "required": ["order"]}},
                {},
                "invalid input: spec.input: 'order' is a required property",
            ),
        ],
    )
    async def test_an_old_record_without_a_verdict_is_judged_again_not_run_empty(
        self, definition: dict[str, Any], saga_input: Any, message: str
    ) -> None:
        """What an older operator left after a crash between ``create`` and ``SagaRejected``."""
        world = World()
        world.store.records[UID] = SagaRecord(
            uid=UID, namespace="ns", name="s1", definition_name="shop",
            definition_generation=1, definition=definition, input=saga_input,
        )  # fmt: skip

        await world.run(world.body())

        assert world.types() == ["SagaRejected"]
        assert world.phase() == "Failed"
        assert world.status()["message"] == message
        assert world.runner.calls == []

    async def test_an_old_record_with_a_valid_snapshot_and_no_event_starts(self) -> None:
        world = World()
        world.store.records[UID] = SagaRecord(
            uid=UID, namespace="ns", name="s1", definition_name="shop",
            definition_generation=1, definition=SHOP, input={},
        )  # fmt: skip

        await world.run(world.body())

        assert world.types()[0] == "SagaStarted"
        assert world.phase() == "Succeeded"


class TestCrashPoints:
    async def test_a_crash_after_the_dispatch_is_journaled_calls_again_with_the_same_attempt(
        self,
    ) -> None:
        world = World()
        # load, start, then the first append is StepDispatched(a): it commits, then we die.
        world.store.faults["append"].append(Fault(Crash(), after_write=True))

        with pytest.raises(Crash):
            await world.run(world.body())
        assert world.types() == ["SagaStarted", "StepDispatched"]
        await world.run(world.body())

        assert world.phase() == "Succeeded"
        assert world.types().count("StepDispatched") == 2  # a and b, each once
        assert [c for c in world.runner.calls if c[0] == "a"] == [("a", "action", 1)] * len(
            [c for c in world.runner.calls if c[0] == "a"]
        )

    async def test_a_database_outage_during_an_append_waits_and_loses_nothing(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(executor, "DATABASE_BACKOFF", (0.0,))
        world = World()
        world.store.faults["append"].extend(
            Fault(StoreUnavailableError("connection refused")) for _ in range(3)
        )

        await world.run(world.body())

        assert world.phase() == "Succeeded"
        assert world.types().count("StepSucceeded") == 2
        assert world.kube.conditions()["DatabaseAvailable"]["status"] == "True"
        assert ("DatabaseUnavailable", "database unavailable: connection refused", True) in (
            world.kube.events
        )


class TestUnstorableValues:
    async def test_input_with_a_nul_fails_at_once_naming_the_field(self) -> None:
        world = World()

        await world.run(world.body(input={"customer": {"name": "Ann\x00"}}))

        assert world.types() == ["SagaRejected"]
        assert world.phase() == "Failed"
        assert world.status()["message"] == (
            "spec.input.customer.name: contains a NUL character, which cannot be stored"
        )
        assert world.store.records[UID].input == {}

    @pytest.mark.parametrize("bad", ["ok\x00", "\ud800", float("nan")])
    async def test_an_unstorable_output_fails_the_step_and_compensates_it(self, bad: Any) -> None:
        world = World()
        world.runner.answers["b"] = lambda attempt: {"receipt": bad}

        await world.run(world.body())

        assert world.phase() == "Compensated"
        failed = [e for e in world.store.events(UID) if isinstance(e, ev.StepFailed)]
        assert len(failed) == 1  # not retried: the same answer would come back
        assert "output.receipt" in failed[0].error
        assert ("b", "compensation", 1) in world.runner.calls  # it took effect: undone

    async def test_an_error_message_is_cleaned_and_bounded(self) -> None:
        from sagaz_operator.errors import PermanentParticipantError

        world = World()

        def refuse(attempt: int) -> Any:
            raise PermanentParticipantError("HTTP 400: " + "\x00" * 10 + "x" * 10_000)

        world.runner.answers["a"] = refuse
        await world.run(world.body())

        failed = next(e for e in world.store.events(UID) if isinstance(e, ev.StepFailed))
        assert "\x00" not in failed.error
        assert len(failed.error) <= 4096
        assert world.phase() == "Compensated"


class TestNoCrashLoop:
    async def test_an_unexpected_error_becomes_a_condition_and_an_event_then_it_recovers(
        self,
    ) -> None:
        world = World()
        world.store.faults["load"].append(Fault(RuntimeError("boom")))

        await world.run(world.body())

        assert world.phase() == "Succeeded"
        reasons = [reason for reason, _, _ in world.kube.events]
        assert "InternalError" in reasons
        assert reasons.index("InternalError") < reasons.index("Recovered")
        assert any(
            c.get("reason") == "InternalError" and c["status"] == "False"
            for s in world.kube.statuses
            for c in s.get("conditions") or []
        )
        assert world.kube.conditions()["Healthy"]["status"] == "True"

    async def test_a_write_the_store_refuses_backs_off_instead_of_escaping(self) -> None:
        world = World()
        world.store.faults["append"].extend(
            Fault(UnstorableError("UntranslatableCharacterError: \\u0000")) for _ in range(3)
        )

        await world.run(world.body())

        assert [reason for reason, _, _ in world.kube.events].count("InternalError") == 3
        assert world.phase() == "Succeeded"


class TestDefinitionsFromTheWatch:
    """A referenced definition comes from the watch's cache; only a miss is a GET."""

    @staticmethod
    def watched(world: World, *, generation: int, spec: dict[str, Any]) -> None:
        meta = {"uid": "d-1", "namespace": "ns", "name": "shop", "generation": generation}
        world.runtime.definitions.observe("ADDED", {"metadata": meta, "spec": spec})

    async def test_a_watched_definition_is_not_read_from_the_api(self) -> None:
        world = World()
        world.kube.objects.clear()  # a GET would find nothing: the saga would fail
        self.watched(world, generation=1, spec=SHOP)
        await world.run(world.body())

        assert world.phase() == "Succeeded"
        assert not [path for path in world.kube.gets if "sagadefinitions" in path]

    async def test_a_definition_the_watch_has_not_shown_is_read_from_the_api(self) -> None:
        world = World()
        await world.run(world.body())

        assert world.phase() == "Succeeded"
        assert [path for path in world.kube.gets if "sagadefinitions" in path] == [
            resource_path("sagaz.io/v1alpha1", "sagadefinitions", "ns", "shop")
        ]

    async def test_the_saga_snapshots_the_generation_the_watch_showed_last(self) -> None:
        world = World()
        self.watched(world, generation=1, spec=SHOP)
        self.watched(world, generation=2, spec=SHOP)
        await world.run(world.body())

        assert world.status()["definition"] == {"name": "shop", "generation": 2}


class TestTakenInAgain:
    """A saga taken in again (an operator restart, a rebalance) after it finished."""

    async def test_its_status_is_not_written_again_when_the_object_shows_it(self) -> None:
        world = World()
        body = world.body()
        await world.run(body)
        written = len(world.kube.statuses)
        body["status"] = world.status()  # what the object shows now

        await world.run(body)

        assert len(world.kube.statuses) == written

    async def test_a_status_the_object_does_not_show_is_written(self) -> None:
        world = World()
        body = world.body()
        await world.run(body)
        final = world.status()
        body["status"] = {**final, "phase": "Running"}  # a write lost in an outage

        await world.run(body)

        assert world.kube.statuses[-1] == final
