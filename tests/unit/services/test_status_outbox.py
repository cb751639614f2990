"""The status outbox retries a finished saga's status and terminal Event until they land,
with the one backoff primitive, in memory against a fake of its Kubernetes port."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from harness.fake_kube import FakeKube
from sagaz_operator import metrics
from sagaz_operator.adapters.kube import ObjectRef
from sagaz_operator.domain import backoff
from sagaz_operator.services.statuses import STATUS_BACKOFF, Notice, StatusOutbox, event_name

SUCCEEDED = Notice(reason="SagaSucceeded", message="all 1 steps succeeded", warning=False)


def ref(name: str = "order-1") -> ObjectRef:
    return ObjectRef(
        kind="Saga", plural="sagas", namespace="shop", name=name, uid=str(uuid.uuid4())
    )


class Sleeps:
    """An injected sleep: records each wait and lets the others run, without waiting."""

    def __init__(self, kube: FakeKube | None = None, *, restore_after: int = 0) -> None:
        self.delays: list[float] = []
        self._kube, self._restore_after = kube, restore_after

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._kube is not None and len(self.delays) == self._restore_after:
            self._kube.restore()
        await asyncio.sleep(0)


async def test_retries_with_growing_backoff_until_the_api_server_is_back() -> None:
    kube = FakeKube()
    kube.down()
    sleeps = Sleeps(kube, restore_after=5)
    outbox = StatusOutbox(kube=kube, sleep=sleeps, jitter=lambda: 0.5)
    saga = ref()

    outbox.submit(saga, status={"phase": "Succeeded"}, notice=SUCCEEDED)
    await outbox.close(grace=5)

    assert sleeps.delays == [
        backoff.delay_seconds(STATUS_BACKOFF, attempt=n, jitter=0.5) for n in range(1, 6)
    ]
    assert sleeps.delays == sorted(sleeps.delays)
    assert sleeps.delays[0] < sleeps.delays[-1]
    assert kube.statuses[saga.uid] == {"phase": "Succeeded"}
    assert [e["reason"] for e in kube.events.values()] == ["SagaSucceeded"]
    assert [c.landed for c in kube.tries("patch_status")] == [False] * 5 + [True]
    assert outbox.pending == 0


async def test_the_backoff_stops_growing_at_its_cap() -> None:
    kube = FakeKube()
    kube.down()
    sleeps = Sleeps(kube, restore_after=12)
    outbox = StatusOutbox(kube=kube, sleep=sleeps, jitter=lambda: 0.999)

    outbox.submit(ref(), status={"phase": "Failed"}, notice=None)
    await outbox.close(grace=5)

    assert max(sleeps.delays) <= STATUS_BACKOFF.max_seconds
    assert sleeps.delays[-3:] == [pytest.approx(STATUS_BACKOFF.max_seconds, rel=1e-3)] * 3


async def test_a_landed_status_is_not_written_again_while_its_event_is_retried() -> None:
    kube = FakeKube()
    outbox = StatusOutbox(kube=kube, sleep=Sleeps(kube, restore_after=2))
    saga = ref()
    real_create = kube.create_event

    async def event_while_down(*args: object, **kwargs: object) -> None:
        if len(kube.tries("create_event")) == 0:
            kube.down()  # the API server goes away between the status and the Event
        await real_create(*args, **kwargs)  # type: ignore[arg-type]

    kube.create_event = event_while_down  # type: ignore[method-assign]
    outbox.submit(saga, status={"phase": "Compensated"}, notice=SUCCEEDED)
    await outbox.close(grace=5)

    assert len(kube.tries("patch_status")) == 1
    assert [c.landed for c in kube.tries("create_event")] == [False, False, True]
    assert list(kube.events) == [event_name(saga, "SagaSucceeded")]


async def test_the_latest_status_of_a_saga_wins() -> None:
    kube = FakeKube()
    kube.down()
    outbox = StatusOutbox(kube=kube, sleep=Sleeps(kube, restore_after=3))
    saga = ref()

    outbox.submit(saga, status={"phase": "Compensating", "progress": "1/3"}, notice=None)
    outbox.submit(saga, status={"phase": "Compensated", "progress": "0/3"}, notice=SUCCEEDED)
    await outbox.close(grace=5)

    assert kube.statuses[saga.uid] == {"phase": "Compensated", "progress": "0/3"}
    assert [c.body["phase"] for c in kube.tries("patch_status") if c.landed] == ["Compensated"]


async def test_a_refused_write_is_not_repeated() -> None:
    kube = FakeKube(refuse={"patch_status"})
    sleeps = Sleeps()
    outbox = StatusOutbox(kube=kube, sleep=sleeps)

    outbox.submit(ref(), status={"phase": "Succeeded"}, notice=None)
    await outbox.close(grace=5)

    assert len(kube.tries("patch_status")) == 1
    assert sleeps.delays == []
    assert outbox.pending == 0


async def test_a_full_outbox_drops_the_oldest_for_the_resync_to_repair() -> None:
    kube = FakeKube()
    kube.down(frozen=True)
    outbox = StatusOutbox(kube=kube, capacity=2)
    first, second, third = ref("a"), ref("b"), ref("c")
    dropped = metrics.status_outbox_dropped._value.get()

    for saga in (first, second, third):
        outbox.submit(saga, status={"phase": "Succeeded"}, notice=None)
    await asyncio.sleep(0)
    kube.restore()
    await outbox.close(grace=5)

    assert metrics.status_outbox_dropped._value.get() == dropped + 1
    assert set(kube.statuses) == {second.uid, third.uid}


async def test_shutdown_gives_a_stuck_delivery_only_its_grace() -> None:
    kube = FakeKube()
    kube.down(frozen=True)  # every call hangs, as on a SIGSTOPped API server
    outbox = StatusOutbox(kube=kube)
    outbox.submit(ref(), status={"phase": "Succeeded"}, notice=SUCCEEDED)
    await asyncio.sleep(0)

    await asyncio.wait_for(outbox.close(grace=0.05), timeout=5)

    assert outbox.pending == 0
    assert kube.statuses == {}


def test_event_names_are_fixed_per_saga_and_reason_and_fit_the_api() -> None:
    long = ObjectRef(kind="Saga", plural="sagas", namespace="shop", name="x" * 253, uid="u1")
    other = ObjectRef(kind="Saga", plural="sagas", namespace="shop", name="x" * 253, uid="u2")

    assert event_name(long, "SagaSucceeded") == event_name(long, "SagaSucceeded")
    assert event_name(long, "SagaSucceeded") != event_name(long, "SagaCompensated")
    assert event_name(long, "SagaSucceeded") != event_name(other, "SagaSucceeded")
    assert len(event_name(long, "SagaSucceeded")) <= 253
