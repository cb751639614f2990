"""Metrics, liveness and clean-up of finished sagas."""

from __future__ import annotations

import asyncio
import re

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from harness.operator import OperatorProcess
from harness.participants import ParticipantServer, Respond
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster


def metric(text: str, name: str, labels: str = "") -> float:
    """The sum of ``name``'s series whose labels include ``labels`` (e.g. 'phase="Running"')."""
    total = 0.0
    pattern = re.escape(name) + r"(?:\{([^}]*)\})? ([0-9.e+-]+)$"
    for found in re.finditer(pattern, text, re.MULTILINE):
        if all(label in (found.group(1) or "").split(",") for label in filter(None, [labels])):
            total += float(found.group(2))
    return total


async def test_metrics_count_finished_sagas_and_steps(
    operator: OperatorProcess, sagas: Sagas, participants: ParticipantServer
) -> None:
    participants.on("/a", Respond())
    before = await asyncio.to_thread(operator.metrics)
    spec = {"steps": [{"name": "a", "action": {"http": {"url": participants.url("/a")}}}]}

    await sagas.start("counted", {"definition": spec, "ttlSecondsAfterFinished": 3600})
    await sagas.wait("counted")
    after = await asyncio.to_thread(operator.metrics)

    finished = 'phase="Succeeded"'
    assert metric(after, "sagaz_sagas_finished_total", finished) == (
        metric(before, "sagaz_sagas_finished_total", finished) + 1
    )
    succeeded = 'result="succeeded"'
    assert metric(after, "sagaz_step_attempts_total", succeeded) >= (
        metric(before, "sagaz_step_attempts_total", succeeded) + 1
    )
    assert "sagaz_saga_duration_seconds_bucket" in after
    assert "counted" not in after  # never a saga name as a label
    # Finished and waiting out its TTL is not active. The gauge drops right after the final
    # status is written, and the metrics endpoint has no watch: poll it.
    active = metric(before, "sagaz_sagas_active")
    async with asyncio.timeout(10):
        while metric(after, "sagaz_sagas_active") != active:
            await asyncio.sleep(0.1)
            after = await asyncio.to_thread(operator.metrics)


async def test_finished_saga_is_deleted_after_its_ttl(
    sagas: Sagas, participants: ParticipantServer
) -> None:
    participants.on("/a", Respond())
    spec = {"steps": [{"name": "a", "action": {"http": {"url": participants.url("/a")}}}]}

    await sagas.start("short-lived", {"definition": spec, "ttlSecondsAfterFinished": 1})
    await sagas.wait("short-lived")

    assert await sagas.deleted("short-lived", within=30)


async def test_a_successful_saga_gets_one_event_from_the_events_api(
    k8s: ApiClient, sagas: Sagas, participants: ParticipantServer
) -> None:
    participants.on("/a", Respond())
    participants.on("/b", Respond())
    spec = {
        "steps": [
            {"name": "a", "action": {"http": {"url": participants.url("/a")}}},
            {"name": "b", "dependsOn": ["a"], "action": {"http": {"url": participants.url("/b")}}},
        ]
    }

    await sagas.start("quiet", {"definition": spec})
    await sagas.wait("quiet")
    events = await sagas.events("quiet", until=lambda reasons: "SagaSucceeded" in reasons)

    assert [reason for reason, _ in events] == ["SagaSucceeded"]  # the journal is the log
    listed = await asyncio.to_thread(client.EventsV1Api(k8s).list_namespaced_event, sagas.namespace)
    (event,) = [e for e in listed.items if e.regarding.name == "quiet"]
    assert event.reporting_controller == "sagaz.io/sagaz-operator"
    assert (event.action, event.type) == ("Finish", "Normal")
    assert event.event_time is not None
