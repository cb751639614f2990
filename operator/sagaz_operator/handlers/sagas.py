"""Saga and SagaDefinition handlers.

Each Saga gets one Kopf daemon that runs its executor (a long create handler would block
deletion, kopf#936) and, once the saga has finished, deletes it after
``ttlSecondsAfterFinished``; for a saga that finished earlier the daemon only does the latter
and exits. The daemon is not filtered on the phase: Kopf would cancel it the moment the status
turns terminal, in the middle of its last writes. It reads the live object; changes of
``spec.suspend`` / ``spec.abort`` / ``spec.retry`` only wake it up through the per-object
memo; while no executor runs (the saga has finished) a lever that cannot apply is refused on
the object.
"""

from __future__ import annotations

from typing import Any

import kopf

from sagaz_operator.api.definition import GROUP, VERSION
from sagaz_operator.services import definitions, levers, sagas
from sagaz_operator.services.executor import Controls
from sagaz_operator.services.runtime import Runtime


@kopf.daemon(GROUP, VERSION, "sagas", cancellation_timeout=30.0)
async def execute(
    body: kopf.Body, spec: kopf.Spec, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any
) -> None:
    controls = Controls()
    _update(controls, spec)
    memo["controls"] = controls
    runtime: Runtime = memo["runtime"]
    assert runtime.sagas is not None
    try:
        await sagas.run(runtime.sagas, body=body, controls=controls, stopped=stopped)
    finally:
        memo["controls"] = None


@kopf.on.event("batch", "v1", "jobs", labels={"sagaz.io/saga": kopf.PRESENT})
def job_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    if runtime.jobs is not None:
        runtime.jobs.observe(body)


@kopf.on.field(GROUP, VERSION, "sagas", field="spec.suspend")
async def suspend_changed(body: kopf.Body, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    await _lever(body, spec, memo, "suspend")


@kopf.on.field(GROUP, VERSION, "sagas", field="spec.abort")
async def abort_changed(body: kopf.Body, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    await _lever(body, spec, memo, "abort")


@kopf.on.field(GROUP, VERSION, "sagas", field="spec.retry")
async def retry_changed(body: kopf.Body, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    await _lever(body, spec, memo, "retry")


async def _lever(body: kopf.Body, spec: kopf.Spec, memo: kopf.Memo, lever: str) -> None:
    controls: Controls | None = memo.get("controls")
    if controls is not None:
        _update(controls, spec)
    runtime: Runtime = memo["runtime"]
    assert runtime.sagas is not None
    # A running executor takes every lever itself; a finished saga's are judged here (a retry
    # that applies is left to its parked daemon).
    if controls is None or controls.parked:
        await levers.refuse_if_finished(
            kube=runtime.sagas.kube,
            journal=runtime.sagas.journal,
            body=body,
            lever=lever,
            clock=runtime.sagas.clock,
        )


def _update(controls: Controls, spec: kopf.Spec) -> None:
    controls.update(
        suspend=bool(spec.get("suspend")),
        abort=bool(spec.get("abort")),
        retry=int(spec.get("retry") or 0),
    )


@kopf.on.resume(GROUP, VERSION, "sagadefinitions")
@kopf.on.create(GROUP, VERSION, "sagadefinitions")
@kopf.on.update(GROUP, VERSION, "sagadefinitions", field="spec")
async def check_definition(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    assert runtime.sagas is not None
    await definitions.check(runtime.sagas.kube, body, clock=runtime.sagas.clock)
