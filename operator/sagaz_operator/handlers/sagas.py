"""Saga and SagaDefinition handlers.

Sagas come in through one plain watch handler: ``services.intake`` runs one executor task per
Saga and stops it when the Saga is deleted; the levers (``spec.suspend`` / ``spec.abort``)
reach the executor from the same events. There is no Kopf daemon and no field handler for
Sagas, so Kopf writes nothing to them (no finalizer, no diff-base annotation); why that is
safe is in ``services/intake.py``.
"""

from __future__ import annotations

from typing import Any

import kopf

from sagaz_operator.api.definition import GROUP, VERSION
from sagaz_operator.services import definitions
from sagaz_operator.services.runtime import Runtime


@kopf.on.event(GROUP, VERSION, "sagas")
async def saga_changed(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    if runtime.intake is not None:
        runtime.intake.observe(event.get("type"), event["object"])


@kopf.on.event("batch", "v1", "jobs", labels={"sagaz.io/saga": kopf.PRESENT})
async def job_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # async: Kopf runs a sync handler in a worker thread, and observe() resolves futures of
    # the event loop, which is safe only from the loop's own thread.
    runtime: Runtime = memo["runtime"]
    if runtime.jobs is not None:
        runtime.jobs.observe(body)


@kopf.on.resume(GROUP, VERSION, "sagadefinitions")
@kopf.on.create(GROUP, VERSION, "sagadefinitions")
@kopf.on.update(GROUP, VERSION, "sagadefinitions", field="spec")
async def check_definition(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    assert runtime.sagas is not None
    await definitions.check(runtime.sagas.kube, body, clock=runtime.sagas.clock)
