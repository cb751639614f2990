"""The Jobs of Job steps.

Sagas and SagaDefinitions are not Kopf's: the operator lists and watches them itself
(``services.informer``, started by the runtime); ``services.intake`` runs one executor task
per Saga and stops it when the Saga is deleted, ``services.definitions`` checks each
SagaDefinition. Kopf writes nothing to either (no finalizer, no diff-base annotation); why
that is safe for Sagas is in ``services/intake.py``.
"""

from __future__ import annotations

from typing import Any

import kopf

from sagaz_operator.services.runtime import Runtime


@kopf.on.event("batch", "v1", "jobs", labels={"sagaz.io/saga": kopf.PRESENT})
async def job_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # async: Kopf runs a sync handler in a worker thread, and observe() resolves futures of
    # the event loop, which is safe only from the loop's own thread.
    runtime: Runtime = memo["runtime"]
    if runtime.jobs is not None:
        runtime.jobs.observe(body)
