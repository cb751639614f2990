"""OutboxWorker handlers: reconcile on every change of the worker or of its children.

A timer refreshes the backlog in the status (and repairs drift) even when nothing changes;
events of the Deployments we own (a manual edit, a pod becoming ready) reconcile at once.
"""

from __future__ import annotations

from typing import Any

import kopf

from sagaz_operator.api.definition import GROUP, VERSION
from sagaz_operator.services import outboxworkers
from sagaz_operator.services.runtime import Runtime


def _workers(memo: kopf.Memo) -> outboxworkers.WorkerRuntime:
    runtime: Runtime = memo["runtime"]
    assert runtime.workers is not None
    return runtime.workers


@kopf.on.resume(GROUP, VERSION, "outboxworkers")
@kopf.on.create(GROUP, VERSION, "outboxworkers")
@kopf.on.update(GROUP, VERSION, "outboxworkers", field="spec")
@kopf.timer(GROUP, VERSION, "outboxworkers", interval=10.0, idle=5.0)
async def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await outboxworkers.reconcile(_workers(memo), body)


@kopf.on.event("apps", "v1", "deployments", labels={"sagaz.io/outboxworker": kopf.PRESENT})
async def child_changed(
    meta: kopf.Meta, namespace: str | None, memo: kopf.Memo, type: str | None, **_: Any
) -> None:
    owner = meta.get("labels", {}).get("sagaz.io/outboxworker")
    if owner and namespace:
        await outboxworkers.reconcile_owner(_workers(memo), namespace=namespace, name=owner)
