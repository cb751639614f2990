"""How often the status of a saga is written: coalesced, and once for a saga that finishes
within one status interval. The API server is a loopback HTTP server that records requests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from harness.participants import ParticipantServer, Respond
from sagaz_operator.adapters.kube import Kube, ObjectRef
from sagaz_operator.domain import definitions, state
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import SagaUid
from sagaz_operator.services.reporting import Reporter
from sagaz_operator.services.statuses import StatusOutbox

UID = str(uuid.uuid4())
REF = ObjectRef(kind="Saga", plural="sagas", namespace="shop", name="order-1", uid=UID)


@pytest.fixture
async def apiserver() -> AsyncIterator[ParticipantServer]:
    async with ParticipantServer() as running:
        running.on(f"{REF.path}/status", Respond(json={}))
        yield running


def reporter(kube: Kube, *, interval: float) -> Reporter:
    return Reporter(
        kube=kube,
        outbox=StatusOutbox(kube=kube),
        ref=REF,
        definition_name="inline",
        definition_generation=1,
        generation=lambda: 1,
        clock=lambda: datetime.now(UTC),
        interval=interval,
    )


async def test_a_saga_finished_within_one_interval_is_written_once(
    apiserver: ParticipantServer,
) -> None:
    definition = definitions.load(
        {"steps": [{"name": "a", "action": {"http": {"url": "http://shop/a"}}}]}
    )
    current = state.initial(uid=SagaUid(UID), definition=definition)
    kube = Kube(apiserver.url("/"))
    writer = reporter(kube, interval=60)
    try:
        writer.publish(current)
        # Time for an eager writer to PATCH (the old behaviour wrote the first state at once);
        # nothing is expected to arrive, so there is no event to wait for.
        await asyncio.sleep(0.5)
        started = ev.SagaStarted(at=datetime.now(UTC))
        writer.publish(state.evolve(current, started))
        await writer.close()
    finally:
        await kube.close()

    (patch,) = apiserver.requests(f"{REF.path}/status")
    assert patch.method == "PATCH"
    assert patch.json is not None
    assert patch.json["status"]["phase"] == "Running"
