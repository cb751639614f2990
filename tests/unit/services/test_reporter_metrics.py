"""What the reporter counts for the dashboard and the alerts: each saga in one in-flight phase
at a time and out of it once finished, its age while it runs, and a capped ``definition``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import prometheus_client
import pytest

from harness.fake_kube import FakeKube
from sagaz_operator import metrics
from sagaz_operator.adapters.kube import ObjectRef
from sagaz_operator.domain import definitions, state
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import SagaUid, StepName
from sagaz_operator.services.reporting import Reporter
from sagaz_operator.services.statuses import StatusOutbox

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DEFINITION = definitions.load(
    {
        "steps": [
            {
                "name": "a",
                "action": {"http": {"url": "http://s/a"}},
                "compensation": {"http": {"url": "http://s/a/undo"}},
            },
            {"name": "b", "dependsOn": ["a"], "action": {"http": {"url": "http://s/b"}}},
        ]
    }
)
A, B = StepName("a"), StepName("b")


@pytest.fixture(autouse=True)
def fresh_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_definitions", set())


def sample(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def in_flight(definition: str, phase: str) -> float:
    return sample("sagaz_sagas_in_flight", definition=definition, phase=phase)


def test_the_first_definitions_keep_their_name_the_rest_are_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "MAX_DEFINITIONS", 2)

    labels = [metrics.definition(name) for name in ["orders", "", "refunds", "audit", "orders"]]

    assert labels == ["orders", "inline", "refunds", "other", "orders"]


async def test_a_saga_moves_through_in_flight_phases_and_leaves_them_when_it_ends() -> None:
    kube = FakeKube()
    name = f"def-{uuid.uuid4().hex[:6]}"  # series of their own: other tests share the registry
    uid = str(uuid.uuid4())
    target = Reporter(
        kube=kube,
        outbox=StatusOutbox(kube=kube),
        ref=ObjectRef(kind="Saga", plural="sagas", namespace="shop", name="o-1", uid=uid),
        definition_name=name,
        definition_generation=1,
        generation=lambda: 1,
        clock=lambda: T0,
        interval=3600,
    )
    current = state.initial(uid=SagaUid(uid), definition=DEFINITION)
    seen: list[tuple[float, float]] = []
    journal: list[ev.Event] = [
        ev.SagaStarted(at=T0),
        ev.StepDispatched(at=T0, step=A, attempt=1),
        ev.StepSucceeded(at=T0 + timedelta(seconds=1), step=A, attempt=1),
        ev.StepDispatched(at=T0 + timedelta(seconds=1), step=B, attempt=1),
        ev.StepFailed(
            at=T0 + timedelta(seconds=2), step=B, attempt=1, error="402", retryable=False
        ),
        ev.SagaFailing(
            at=T0 + timedelta(seconds=2), reason=ev.FailureReason.STEP_FAILED, message="b failed"
        ),
    ]
    for event in journal:
        current = state.evolve(current, event)
        target.observe(event, current)
        seen.append((in_flight(name, "Running"), in_flight(name, "Compensating")))

    assert seen[:-1] == [(1, 0)] * 5
    assert seen[-1] == (0, 1)
    assert list(metrics.running_since.values()).count(T0.timestamp()) >= 1
    assert sample("sagaz_sagas_started_total", definition=name) == 1
    assert sample("sagaz_step_attempts_total", result="failed", definition=name) == 1

    finished = ev.SagaFinished(
        at=T0 + timedelta(seconds=3), outcome=ev.Outcome.COMPENSATED, message="undone"
    )
    current = state.evolve(current, finished)
    target.observe(finished, current)
    await target.close()

    assert (in_flight(name, "Running"), in_flight(name, "Compensating")) == (0, 0)
    assert id(target) not in metrics.running_since
    assert sample("sagaz_sagas_finished_total", phase="Compensated", definition=name) == 1
