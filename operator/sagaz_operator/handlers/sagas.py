"""Saga and SagaDefinition handlers.

Each Saga gets one Kopf daemon that runs its executor (a long create handler would block
deletion, kopf#936) and, once the saga has finished, deletes it after
``ttlSecondsAfterFinished``; for a saga that finished earlier the daemon only does the latter
and exits. The daemon is not filtered on the phase: Kopf would cancel it the moment the status
turns terminal, in the middle of its last writes. It reads the live object; changes of
``spec.suspend`` / ``spec.abort`` only wake it up through the per-object memo.
"""

from __future__ import annotations

from typing import Any

import kopf

from sagaz_operator.api.definition import GROUP, VERSION
from sagaz_operator.services import definitions, sagas
from sagaz_operator.services.executor import Controls
from sagaz_operator.services.runtime import Runtime


@kopf.daemon(GROUP, VERSION, "sagas", cancellation_timeout=30.0)
async def execute(
    body: kopf.Body, spec: kopf.Spec, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any
) -> None:
    controls = Controls(suspend=bool(spec.get("suspend")), abort=bool(spec.get("abort")))
    memo["controls"] = controls
    runtime: Runtime = memo["runtime"]
    assert runtime.sagas is not None
    await sagas.run(runtime.sagas, body=body, controls=controls, stopped=stopped)


@kopf.on.event("batch", "v1", "jobs", labels={"sagaz.io/saga": kopf.PRESENT})
def job_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    if runtime.jobs is not None:
        runtime.jobs.observe(body)


@kopf.on.field(GROUP, VERSION, "sagas", field="spec.suspend")
@kopf.on.field(GROUP, VERSION, "sagas", field="spec.abort")
def levers(spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    controls: Controls | None = memo.get("controls")
    if controls is not None:
        controls.update(suspend=bool(spec.get("suspend")), abort=bool(spec.get("abort")))


@kopf.on.resume(GROUP, VERSION, "sagadefinitions")
@kopf.on.create(GROUP, VERSION, "sagadefinitions")
@kopf.on.update(GROUP, VERSION, "sagadefinitions", field="spec")
async def check_definition(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    assert runtime.sagas is not None
    await definitions.check(runtime.sagas.kube, body, clock=runtime.sagas.clock)
