"""Sagas that fail, retry, time out, pause or abort, on the real cluster with real participants."""

from __future__ import annotations

from typing import Any

import pytest

from harness.participants import Fail, ParticipantServer, Respond, Stall
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster

FAST_RETRY = {"maxAttempts": 3, "backoff": {"initialSeconds": 0.2, "factor": 2, "maxSeconds": 1}}


def http(server: ParticipantServer, path: str, **extra: Any) -> dict[str, Any]:
    return {"http": {"url": server.url(path), **extra}}


def step(
    server: ParticipantServer, name: str, *after: str, undo: bool = True, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "action": http(server, f"/{name}"), **extra}
    if after:
        body["dependsOn"] = list(after)
    if undo:
        body["compensation"] = http(server, f"/{name}/undo")
    return body


def chain(server: ParticipantServer, **spec: Any) -> dict[str, Any]:
    """a -> (b, c) -> d, fast retries"""
    return {
        "defaults": {"timeoutSeconds": 5, "retry": FAST_RETRY},
        "compensationRetry": FAST_RETRY,
        "steps": [
            step(server, "a"),
            step(server, "b", "a"),
            step(server, "c", "a"),
            step(server, "d", "b", "c"),
        ],
        **spec,
    }


async def run(sagas: Sagas, name: str, spec: dict[str, Any], **saga: Any) -> dict[str, Any]:
    await sagas.start(name, {"definition": spec, "input": {}, **saga})
    return await sagas.wait(name)


def stall_at_b(server: ParticipantServer) -> None:
    """a and c answer, b never does; every compensation succeeds."""
    for path in ("/a", "/c", "/a/undo", "/b/undo", "/c/undo"):
        server.on(path, Respond())
    server.on("/b", Stall())


def phases(saga: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["phase"] for s in saga["status"]["steps"]}


class TestCompensation:
    async def test_failure_compensates_in_reverse_order_with_events(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        participants.on("/d", Fail(422))
        for path in ("/a", "/b", "/c", "/a/undo", "/b/undo", "/c/undo"):
            participants.on(path, Respond())

        saga = await run(sagas, "fail-last", chain(participants))

        assert saga["status"]["phase"] == "Compensated"
        assert phases(saga) == {
            "a": "Compensated",
            "b": "Compensated",
            "c": "Compensated",
            "d": "Failed",
        }
        undo = [r.path for r in participants.requests() if r.path.endswith("/undo")]
        assert undo[-1] == "/a/undo"  # after both of its dependents
        assert sorted(undo[:2]) == ["/b/undo", "/c/undo"]
        events = await sagas.events(
            "fail-last", until=lambda r: {"CompensationStarted", "SagaCompensated"} <= set(r)
        )
        # Events are for people: one when compensation starts, naming what failed, and the
        # end; each step compensated is only journaled. Microsecond event times keep the order.
        assert [reason for reason, _ in events] == ["CompensationStarted", "SagaCompensated"]
        assert "step 'd'" in events[0][1]
        assert "422" in events[0][1]

    async def test_failed_compensation_ends_compensation_failed_with_event(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        participants.on("/b", Fail(500))
        participants.on("/a/undo", Fail(400))
        for path in ("/a", "/c", "/c/undo"):
            participants.on(path, Respond())

        saga = await run(sagas, "undo-fails", chain(participants))

        assert saga["status"]["phase"] == "CompensationFailed"
        assert "compensation of 'a'" in saga["status"]["message"]
        events = dict(
            await sagas.events("undo-fails", until=lambda r: "SagaCompensationFailed" in r)
        )
        assert "400" in events["SagaCompensationFailed"]


class TestRetries:
    async def test_retryable_errors_are_retried_then_succeed(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        participants.on("/a", Fail(503, times=2), Respond(json={"n": 3}))
        for path in ("/b", "/c", "/d"):
            participants.on(path, Respond())

        saga = await run(sagas, "flaky", chain(participants))

        assert saga["status"]["phase"] == "Succeeded"
        assert saga["status"]["steps"][0]["attempts"] == 3
        keys = {r.idempotency_key for r in participants.requests("/a")}
        assert len(keys) == 1  # the same key on every retry
        assert [r.attempt for r in participants.requests("/a")] == [1, 2, 3]

    async def test_non_retryable_client_error_is_not_retried(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        participants.on("/a", Fail(404))

        saga = await run(sagas, "not-found", chain(participants))

        assert saga["status"]["phase"] == "Compensated"
        assert len(participants.requests("/a")) == 1
        assert "404" in saga["status"]["steps"][0]["error"]

    async def test_exhausted_retries_compensate(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        participants.on("/b", Fail(503))
        for path in ("/a", "/c", "/a/undo", "/c/undo"):
            participants.on(path, Respond())

        saga = await run(sagas, "exhausted", chain(participants))

        assert saga["status"]["phase"] == "Compensated"
        assert len(participants.requests("/b")) == 3
        assert "failed after 3 attempts" in saga["status"]["message"]


class TestTimeouts:
    async def test_step_timeout_retries_and_compensates_the_unknown_outcome(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        participants.on("/a", Stall(5))
        participants.on("/a/undo", Respond())
        spec = chain(participants)
        spec["defaults"] = {"timeoutSeconds": 1, "retry": {**FAST_RETRY, "maxAttempts": 2}}

        saga = await run(sagas, "slow", spec)

        assert saga["status"]["phase"] == "Compensated"
        assert len(participants.requests("/a")) == 2
        assert len(participants.requests("/a/undo")) == 1  # it may have happened: undo it

    async def test_saga_deadline_compensates(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        stall_at_b(participants)
        spec = chain(participants, timeoutSeconds=2)
        spec["defaults"]["timeoutSeconds"] = 30

        saga = await run(sagas, "deadline", spec)

        assert saga["status"]["phase"] == "Compensated"
        assert "deadline of 2s exceeded" in saga["status"]["message"]


class TestFailureStrategies:
    """b fails at once while c is still running for a second."""

    async def strategy_run(
        self, sagas: Sagas, participants: ParticipantServer, name: str, **spec: Any
    ) -> dict[str, Any]:
        participants.on("/b", Fail(400))
        participants.on("/c", Stall(1.5, then=Respond(json={"late": True})))
        for path in ("/a", "/a/undo", "/c/undo"):
            participants.on(path, Respond())
        return await run(sagas, name, chain(participants, **spec))

    async def test_fail_fast_cancels_the_running_sibling(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        saga = await self.strategy_run(sagas, participants, "ff", failureStrategy="FailFast")

        c = saga["status"]["steps"][2]
        assert c["error"].startswith("cancelled in flight")
        assert c["phase"] == "Compensated"

    async def test_wait_all_lets_the_sibling_finish(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        saga = await self.strategy_run(sagas, participants, "wa", failureStrategy="WaitAll")

        c = saga["status"]["steps"][2]
        assert c["output"] == {"late": True}
        assert c["phase"] == "Compensated"

    async def test_grace_period_too_short_cancels(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        saga = await self.strategy_run(
            sagas, participants, "grace", failureStrategy="FailFastWithGrace", gracePeriodSeconds=0
        )

        assert saga["status"]["steps"][2]["error"].startswith("cancelled in flight")


class TestUserLevers:
    async def test_suspend_then_resume(self, sagas: Sagas, participants: ParticipantServer) -> None:
        gate = participants.on("/a", Stall())
        for path in ("/b", "/c", "/d"):
            participants.on(path, Respond())
        await sagas.start("paused", {"definition": chain(participants), "suspend": False})
        await participants.wait_for_requests("/a", 1)

        await sagas.patch_object("sagas", "paused", {"suspend": True})
        await sagas.wait("paused", ("Suspended",))
        assert isinstance(gate, Stall)
        gate.release()
        saga = await sagas.wait_for(
            lambda s: (
                s["metadata"]["name"] == "paused"
                and (s.get("status") or {}).get("progress") == "1/4"
            )
        )
        assert participants.requests("/b") == []  # a finished, but nothing new started
        assert saga["status"]["phase"] == "Suspended"

        await sagas.patch_object("sagas", "paused", {"suspend": False})
        saga = await sagas.wait("paused")
        assert saga["status"]["phase"] == "Succeeded"

    async def test_abort_compensates_what_ran(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        stall_at_b(participants)
        await sagas.start("aborted", {"definition": chain(participants)})
        await participants.wait_for_requests("/b", 1)

        await sagas.patch_object("sagas", "aborted", {"abort": True})
        saga = await sagas.wait("aborted")

        assert saga["status"]["phase"] == "Compensated"
        assert saga["status"]["message"].startswith("aborted")
        assert len(participants.requests("/a/undo")) == 1


class TestPivot:
    async def test_retriable_steps_after_the_pivot_retry_until_success(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        participants.on("/reserve", Respond())
        participants.on("/charge", Respond())
        participants.on("/ship", Fail(400, times=4), Respond())
        spec = {
            "defaults": {
                "retry": {"maxAttempts": 1, "backoff": {"initialSeconds": 0.1, "maxSeconds": 0.2}}
            },
            "steps": [
                step(participants, "reserve"),
                step(participants, "charge", "reserve", undo=False, kind="Pivot"),
                step(participants, "ship", "charge", undo=False, kind="Retriable"),
            ],
        }

        saga = await run(sagas, "pivot", spec)

        assert saga["status"]["phase"] == "Succeeded"
        assert len(participants.requests("/ship")) == 5


class TestDefinitionSnapshot:
    async def test_editing_or_deleting_the_definition_does_not_change_a_running_saga(
        self, sagas: Sagas, participants: ParticipantServer
    ) -> None:
        gate = participants.on("/a", Stall())
        participants.on("/b", Respond())
        participants.on("/b2", Respond())
        spec = {
            "steps": [
                step(participants, "a", undo=False),
                step(participants, "b", "a", undo=False),
            ]
        }
        await sagas.define("snap", spec)
        await sagas.start("snapped", {"definitionRef": {"name": "snap"}})
        await participants.wait_for_requests("/a", 1)

        spec["steps"][1]["action"] = http(participants, "/b2")
        await sagas.replace_definition("snap", spec)
        await sagas.delete_definition("snap")
        assert isinstance(gate, Stall)
        gate.release()
        saga = await sagas.wait("snapped")

        assert saga["status"]["phase"] == "Succeeded"
        assert len(participants.requests("/b")) == 1
        assert participants.requests("/b2") == []
        assert saga["status"]["definition"] == {"name": "snap", "generation": 1}
