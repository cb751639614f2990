"""The reporter never waits out an API-server outage at the end of a saga, and its status
writes back off while the API server is away."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from harness.fake_kube import FakeKube
from sagaz_operator.adapters.kube import ObjectRef
from sagaz_operator.domain import definitions, state
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import SagaUid, StepName
from sagaz_operator.services.pacing import StatusBudget
from sagaz_operator.services.reporting import Reporter
from sagaz_operator.services.statuses import StatusOutbox, event_name

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
UID = str(uuid.uuid4())
REF = ObjectRef(kind="Saga", plural="sagas", namespace="shop", name="order-1", uid=UID)
DEFINITION = definitions.load({"steps": [{"name": "a", "action": {"http": {"url": "http://s/a"}}}]})
JOURNAL: list[ev.Event] = [
    ev.SagaStarted(at=T0),
    ev.StepDispatched(at=T0, step=StepName("a"), attempt=1),
    ev.StepSucceeded(at=T0 + timedelta(seconds=1), step=StepName("a"), attempt=1),
    ev.SagaFinished(at=T0 + timedelta(seconds=1), outcome=ev.Outcome.SUCCEEDED, message="done"),
]


def reporter(kube: FakeKube, outbox: StatusOutbox, **options: object) -> Reporter:
    return Reporter(
        kube=kube,
        outbox=outbox,
        ref=REF,
        definition_name="inline",
        definition_generation=1,
        generation=lambda: 1,
        clock=lambda: T0 + timedelta(seconds=2),
        **{"interval": 0.01, **options},  # type: ignore[arg-type]
    )


def run_through(target: Reporter) -> state.SagaState:
    current = state.initial(uid=SagaUid(UID), definition=DEFINITION)
    for event in JOURNAL:
        current = state.evolve(current, event)
        target.observe(event, current)
        target.publish(current)
    return current


async def test_a_finished_saga_closes_at_once_and_its_end_lands_when_the_api_is_back() -> None:
    kube = FakeKube()
    kube.down(frozen=True)  # a SIGSTOPped API server: calls hang
    outbox = StatusOutbox(kube=kube)
    target = reporter(kube, outbox)
    run_through(target)

    await asyncio.wait_for(target.close(), timeout=5)  # the executor may release its lock now
    assert outbox.pending == 1
    kube.restore()
    await outbox.close(grace=5)

    assert kube.statuses[UID]["phase"] == "Succeeded"
    assert kube.events[event_name(REF, "SagaSucceeded")]["message"] == "done"


async def test_status_writes_back_off_while_the_api_server_is_away() -> None:
    kube = FakeKube()
    kube.down()
    delays: list[float] = []
    current = state.initial(uid=SagaUid(UID), definition=DEFINITION)

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 5:
            kube.restore()
        await asyncio.sleep(0)

    target = reporter(kube, StatusOutbox(kube=kube), sleep=sleep, jitter=lambda: 0.0)
    target.publish(state.evolve(current, JOURNAL[0]))
    await asyncio.wait_for(kube.written.wait(), timeout=5)
    await target.close()

    # One interval before the first write, then STATUS_BACKOFF's halves (equal jitter at 0).
    assert delays[:5] == [0.01, 0.25, 0.5, 1.0, 2.0]
    assert kube.statuses[UID]["phase"] == "Running"


async def test_many_running_sagas_stretch_each_ones_status_interval_to_the_budget() -> None:
    kube = FakeKube()
    outbox = StatusOutbox(kube=kube)
    budget = StatusBudget(writes_per_second=2)
    delays: list[float] = []
    asleep = asyncio.Event()

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        asleep.set()
        await asyncio.Event().wait()  # never wakes: only the first pause is looked at

    current = state.evolve(state.initial(uid=SagaUid(UID), definition=DEFINITION), JOURNAL[0])
    crowd = [reporter(kube, outbox, sleep=sleep, budget=budget) for _ in range(10)]
    for each in crowd:
        each.publish(current)
    while len(delays) < len(crowd):
        asleep.clear()
        await asyncio.wait_for(asleep.wait(), timeout=5)
    assert budget.running == 10
    # Ten sagas under a budget of two writes a second: each waits five seconds, not 0.01.
    assert delays[-1] == 5.0

    for each in crowd:
        await each.close()
    assert budget.running == 0
    lone = reporter(kube, outbox, sleep=sleep, budget=budget)
    lone.publish(current)
    asleep.clear()
    await asyncio.wait_for(asleep.wait(), timeout=5)
    assert delays[-1] == 0.5  # alone again: the whole budget, two writes a second, is its own
    await lone.close()


TWO_STEPS = definitions.load(
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


def compensated(*, retried: bool) -> list[ev.Event]:
    """a succeeds, b fails for good (after a retryable failure, if ``retried``), a is undone."""
    a, b = StepName("a"), StepName("b")
    at = T0 + timedelta(seconds=1)
    tries: list[ev.Event] = []
    if retried:
        tries = [
            ev.StepDispatched(at=at, step=b, attempt=1),
            ev.StepFailed(at=at, step=b, attempt=1, error="answered 503", retryable=True),
        ]
    last = 2 if retried else 1
    return [
        ev.SagaStarted(at=T0),
        ev.StepDispatched(at=T0, step=a, attempt=1),
        ev.StepSucceeded(at=at, step=a, attempt=1),
        *tries,
        ev.StepDispatched(at=at, step=b, attempt=last),
        ev.StepFailed(at=at, step=b, attempt=last, error="answered 422", retryable=False),
        ev.SagaFailing(
            at=at, reason=ev.FailureReason.STEP_FAILED, message="step 'b' failed: answered 422"
        ),
        ev.CompensationStarted(at=at),
        ev.CompensationDispatched(at=at, step=a, attempt=1),
        ev.CompensationSucceeded(at=at, step=a, attempt=1),
        ev.SagaFinished(at=at, outcome=ev.Outcome.COMPENSATED, message="compensated 1 step(s)"),
    ]


async def report_compensated(kube: FakeKube, *, retried: bool) -> None:
    """Report every event of a compensated saga as it happens, with a 60 s status interval."""
    outbox = StatusOutbox(kube=kube)
    target = reporter(kube, outbox, interval=60.0)
    current = state.initial(uid=SagaUid(UID), definition=TWO_STEPS)
    for event in compensated(retried=retried):
        current = state.evolve(current, event)
        target.observe(event, current)
        target.publish(current)
    await target.close()
    await outbox.close(grace=5)


async def test_a_compensated_saga_gets_one_event_for_its_compensation_and_one_status() -> None:
    kube = FakeKube()
    await report_compensated(kube, retried=False)  # finished within one interval

    posted = [(e["reason"], e["message"]) for e in kube.events.values()]
    assert posted == [
        ("CompensationStarted", "compensating the steps that ran: step 'b' failed: answered 422"),
        ("SagaCompensated", "compensated 1 step(s)"),
    ]
    assert [call.body["phase"] for call in kube.tries("patch_status")] == ["Compensated"]


async def test_a_failed_attempt_that_will_be_retried_gets_an_event() -> None:
    kube = FakeKube()
    await report_compensated(kube, retried=True)

    reasons = [e["reason"] for e in kube.events.values()]
    assert reasons == ["StepFailed", "CompensationStarted", "SagaCompensated"]
