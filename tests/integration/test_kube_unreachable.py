"""When the Kubernetes API cannot be reached, the adapter says so with one error type, and
what only reports (status, Events) logs it and carries on instead of dying."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from harness.participants import refused_url
from sagaz_operator.adapters.kube import ApiUnreachableError, Kube, ObjectRef
from sagaz_operator.domain import definitions, state
from sagaz_operator.domain.model import SagaUid
from sagaz_operator.services.reporting import Reporter
from sagaz_operator.services.statuses import StatusOutbox

UID = str(uuid.uuid4())
REF = ObjectRef(kind="Saga", plural="sagas", namespace="shop", name="order-1", uid=UID)


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    unreachable = Kube(refused_url())
    yield unreachable
    await unreachable.close()


async def test_calls_fail_with_one_error_type(kube: Kube) -> None:
    with pytest.raises(ApiUnreachableError):
        await kube.get(REF.path)
    with pytest.raises(ApiUnreachableError):
        await kube.patch_status(REF, {"phase": "Running"})


async def test_an_event_that_cannot_be_posted_is_only_logged(
    kube: Kube, caplog: pytest.LogCaptureFixture
) -> None:
    await kube.post_event(REF, reason="StepFailed", message="step a failed")

    assert "could not post event StepFailed" in caplog.text


async def test_the_status_writer_survives_and_still_closes(
    kube: Kube, caplog: pytest.LogCaptureFixture
) -> None:
    definition = definitions.load(
        {"steps": [{"name": "a", "action": {"http": {"url": "http://shop/a"}}}]}
    )
    reporter = Reporter(
        kube=kube,
        outbox=StatusOutbox(kube=kube),
        ref=REF,
        definition_name="inline",
        definition_generation=1,
        generation=lambda: 1,
        clock=lambda: datetime.now(UTC),
        interval=0.01,
    )
    reporter.publish(state.initial(uid=SagaUid(UID), definition=definition))

    await reporter.close()  # writes the last state once more, and does not raise

    assert caplog.text.count("status not written") >= 1
