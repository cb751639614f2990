"""OutboxWorker handlers: reconcile on every change of the worker or of its children.

A timer refreshes the backlog in the status (and repairs drift) even when nothing changes;
events of the Deployments we own (a manual edit, a pod becoming ready) reconcile at once.

With several operator replicas the timer and the child events are acted on only by the
replica that owns the OutboxWorker's uid (``Runtime.owns``), so the periodic work is not
multiplied. Creation, spec changes and resumption still reach every replica: Kopf records
that a change was handled in annotations on the object, shared by all replicas, so a replica
that skipped it could mark it handled for the owner too; those changes are rare and a
reconcile is an idempotent server-side apply.
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


def _owns(memo: kopf.Memo, uid: str | None) -> bool:
    runtime: Runtime = memo["runtime"]
    return runtime.owns(uid)


@kopf.on.resume(GROUP, VERSION, "outboxworkers")
@kopf.on.create(GROUP, VERSION, "outboxworkers")
@kopf.on.update(GROUP, VERSION, "outboxworkers", field="spec")
async def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await outboxworkers.reconcile(_workers(memo), body)


@kopf.timer(GROUP, VERSION, "outboxworkers", interval=10.0, idle=5.0)
async def refresh(body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    if _owns(memo, meta.get("uid")):
        await outboxworkers.reconcile(_workers(memo), body)


@kopf.on.event("apps", "v1", "deployments", labels={"sagaz.io/outboxworker": kopf.PRESENT})
async def child_changed(
    meta: kopf.Meta, namespace: str | None, memo: kopf.Memo, type: str | None, **_: Any
) -> None:
    owner = meta.get("labels", {}).get("sagaz.io/outboxworker")
    uids = [ref.get("uid") for ref in meta.get("ownerReferences") or []]
    if owner and namespace and any(_owns(memo, uid) for uid in uids):
        await outboxworkers.reconcile_owner(_workers(memo), namespace=namespace, name=owner)
