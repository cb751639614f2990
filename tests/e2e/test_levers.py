"""The levers end to end: a compensation that fails until its participant is fixed, then
``kubectl sagaz retry``; levers refused where they do not apply; a retry requested while the
operator is down."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from harness import stack
from harness.operator import OperatorProcess
from harness.participants import Fail, ParticipantServer, Respond, Stall
from harness.plugin import Plugin
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster

FAST = {"maxAttempts": 3, "backoff": {"initialSeconds": 0.2, "factor": 2, "maxSeconds": 1}}


def definition(server: ParticipantServer) -> dict[str, Any]:
    """reserve -> charge -> ship; ship fails at once, so reserve and charge are undone."""

    def step(name: str, *after: str) -> dict[str, Any]:
        return {
            "name": name,
            "dependsOn": list(after),
            "action": {"http": {"url": server.url(f"/{name}")}},
            "compensation": {"http": {"url": server.url(f"/{name}/undo")}},
        }

    return {
        "defaults": {"timeoutSeconds": 5, "retry": FAST},
        "compensationRetry": FAST,
        "steps": [step("reserve"), step("charge", "reserve"), step("ship", "charge")],
    }


def broken_refunds(server: ParticipantServer) -> None:
    for path in ("/reserve", "/charge", "/reserve/undo"):
        server.on(path, Respond())
    server.on("/ship", Fail(422))
    server.on("/charge/undo", Fail(503))  # until someone fixes it


@pytest.fixture
def plugin(cluster: stack.Cluster, operator: OperatorProcess, e2e_namespace: str) -> Plugin:
    return Plugin(cluster.kubeconfig, e2e_namespace, operator.api_url)


def step_of(saga: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in saga["status"]["steps"] if s["name"] == name)


async def test_a_fixed_compensation_is_retried_and_the_saga_ends_compensated(
    sagas: Sagas, participants: ParticipantServer, plugin: Plugin
) -> None:
    broken_refunds(participants)
    await sagas.start("refund", {"definition": definition(participants), "input": {}})
    stuck = await sagas.wait("refund")
    assert stuck["status"]["phase"] == "CompensationFailed"
    assert step_of(stuck, "reserve")["phase"] == "Succeeded"  # left alone under charge
    assert len(participants.requests("/charge/undo")) == 3

    participants.on("/charge/undo", Respond())  # the participant is fixed
    result = await plugin("retry", "refund", "--wait")

    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == [
        "saga.sagaz.io/refund retry 1 requested",
        "saga.sagaz.io/refund is Compensated",
    ]
    saga = await sagas.get("refund")
    assert saga["status"]["observedRetry"] == 1
    assert step_of(saga, "charge")["phase"] == "Compensated"
    assert step_of(saga, "charge")["compensationAttempts"] == 4  # numbering goes on
    assert step_of(saga, "reserve")["phase"] == "Compensated"
    undo = [r.path for r in participants.requests() if r.path.endswith("/undo")]
    assert undo[-2:] == ["/charge/undo", "/reserve/undo"]  # still in dependency order
    keys = {r.idempotency_key for r in participants.requests("/charge/undo")}
    assert len(keys) == 1  # the same request, repeated


async def test_a_compensation_still_broken_fails_again_after_a_fresh_budget(
    sagas: Sagas, participants: ParticipantServer, plugin: Plugin
) -> None:
    broken_refunds(participants)
    await sagas.start("still-broken", {"definition": definition(participants), "input": {}})
    await sagas.wait("still-broken")

    result = await plugin("retry", "still-broken", "--wait")

    assert result.code == 1
    assert result.out.splitlines()[-1] == "saga.sagaz.io/still-broken is CompensationFailed"
    assert len(participants.requests("/charge/undo")) == 6  # three more attempts


async def test_levers_are_refused_where_they_do_not_apply(
    sagas: Sagas, participants: ParticipantServer, plugin: Plugin
) -> None:
    participants.on("/a", Respond())
    spec = {"steps": [{"name": "a", "action": {"http": {"url": participants.url("/a")}}}]}
    await sagas.start("done", {"definition": spec})
    await sagas.wait("done")

    retried = await plugin("retry", "done")
    suspended = await plugin("suspend", "done")

    assert retried.code == 1
    assert retried.err == (
        "error: retry refused: spec.retry applies to a CompensationFailed saga, or a Failed one "
        "whose Retriable steps ran out of time; this saga is Succeeded\n"
    )
    assert suspended.code == 1
    assert "spec.suspend has no effect: the saga has finished (Succeeded)" in suspended.err
    saga = await sagas.get("done")
    condition = next(c for c in saga["status"]["conditions"] if c["type"] == "LeverRefused")
    assert (condition["status"], condition["reason"]) == ("True", "SuspendRefused")
    assert saga["status"]["phase"] == "Succeeded"


async def test_a_retry_while_running_is_refused_and_never_applied_later(
    sagas: Sagas, participants: ParticipantServer, plugin: Plugin
) -> None:
    broken_refunds(participants)
    stall = participants.on("/reserve", Stall())
    await sagas.start("early", {"definition": definition(participants), "input": {}})
    await participants.wait_for_requests("/reserve", 1, saga="early")

    result = await plugin("retry", "early")
    assert isinstance(stall, Stall)
    stall.release()
    saga = await sagas.wait("early")

    assert result.code == 1
    assert "this saga is Running" in result.err
    # It ended CompensationFailed, but the earlier request (1) was not applied to it.
    assert saga["status"]["phase"] == "CompensationFailed"
    assert saga["status"]["observedRetry"] == 1
    assert len(participants.requests("/charge/undo")) == 3
    history = await plugin("history", "early", "-o", "json")
    assert '"RetryRefused"' in history.out


async def test_a_retry_requested_while_the_operator_is_down_is_applied_when_it_is_back(
    cluster: stack.Cluster,
    participants: ParticipantServer,
    own_sagas: Sagas,
    own_operator: OperatorProcess,
) -> None:
    broken_refunds(participants)
    await own_sagas.start("restart", {"definition": definition(participants), "input": {}})
    await own_sagas.wait("restart")
    own_operator.kill()

    await own_sagas.patch_object("sagas", "restart", {"retry": 1})
    participants.on("/charge/undo", Respond())
    own_operator.start()
    saga = await own_sagas.wait("restart", ("Compensated",), within=90)

    assert saga["status"]["observedRetry"] == 1
    assert len(participants.requests("/charge/undo")) == 4
    conn = await asyncpg.connect(own_operator.database_url)
    try:
        types = await conn.fetch(
            "SELECT event_type FROM sagaz_journal WHERE saga_uid = $1 ORDER BY seq",
            uuid.UUID(saga["metadata"]["uid"]),
        )
    finally:
        await conn.close()
    kinds = [row["event_type"] for row in types]
    assert kinds.count("RetryRequested") == 1
    assert kinds.index("RetryRequested") > kinds.index("SagaFinished")
    assert kinds[-1] == "SagaFinished"


@pytest.fixture
def own_operator(
    cluster: stack.Cluster, postgres_url: str, own_namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        kubeconfig=cluster.kubeconfig,
        database_url=postgres_url,
        namespaces=[own_namespace],
        log=tmp_path / "operator.log",
    )
    process.start()
    yield process
    process.stop()


async def test_retriable_steps_that_ran_out_of_time_are_retried_forward(
    sagas: Sagas, participants: ParticipantServer, plugin: Plugin
) -> None:
    def call(name: str) -> dict[str, Any]:
        return {"http": {"url": participants.url(f"/{name}")}}

    spec = {
        "timeoutSeconds": 3,
        "defaults": {"timeoutSeconds": 2, "retry": FAST},
        "steps": [
            {"name": "reserve", "action": call("reserve"), "compensation": call("reserve/undo")},
            {"name": "charge", "kind": "Pivot", "dependsOn": ["reserve"], "action": call("charge")},
            {"name": "ship", "kind": "Retriable", "dependsOn": ["charge"], "action": call("ship")},
        ],
    }
    participants.on("/reserve", Respond())
    participants.on("/charge", Respond())
    participants.on("/ship", Fail(503))  # the carrier is down past the deadline
    await sagas.start("forward", {"definition": spec})
    failed = await sagas.wait("forward")
    assert failed["status"]["phase"] == "Failed"

    participants.on("/ship", Respond(json={"tracking": "T-9"}))
    result = await plugin("retry", "forward", "--wait")

    assert (result.code, result.out.splitlines()[-1]) == (0, "saga.sagaz.io/forward is Succeeded")
    saga = await sagas.get("forward")
    assert step_of(saga, "ship")["output"] == {"tracking": "T-9"}
    assert len(participants.requests("/charge")) == 1  # the Pivot is never repeated
    assert participants.requests("/reserve/undo") == []  # nor anything compensated
