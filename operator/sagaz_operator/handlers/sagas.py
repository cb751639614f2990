"""The Jobs of Job steps, and SagaDefinition handlers.

Sagas themselves are not Kopf's: the operator lists and watches them itself
(``services.informer``, started by the runtime), and ``services.intake`` runs one executor
task per Saga and stops it when the Saga is deleted. Kopf writes nothing to a Saga (no
finalizer, no diff-base annotation); why that is safe is in ``services/intake.py``.
"""

from __future__ import annotations

from typing import Any

import kopf

from sagaz_operator.api.definition import GROUP, VERSION
from sagaz_operator.services import definitions
from sagaz_operator.services.runtime import Runtime


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
