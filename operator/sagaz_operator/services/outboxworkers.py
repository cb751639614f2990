"""Reconciles an OutboxWorker into its Deployment and HPA, and reports the fleet's status.

Every reconcile applies the whole desired state (server-side apply, forced), so a spec change,
a manual edit of a child, or a deleted child all converge the same way. Children carry an
owner reference, so deleting the OutboxWorker lets Kubernetes' garbage collector remove them.
The backlog shown in the status is read from the outbox table itself.

Reconciles of one OutboxWorker run one at a time: a reconcile started by the worker's own
handler and one started by its Deployment becoming ready would otherwise race, and the slower
one would write a stale ``readyReplicas`` over the fresh one.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from sagaz_operator.adapters.kube import Kube, ObjectRef, resource_path
from sagaz_operator.adapters.postgres import backlog
from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.api.outboxworker import OutboxWorkerSpec
from sagaz_operator.domain import conditions, definitions, workers
from sagaz_operator.services.executor import Clock

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class WorkerRuntime:
    kube: Kube
    image: str
    clock: Clock
    _locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary, init=False, repr=False
    )

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        """The lock serialising reconciles of one OutboxWorker; it lives while someone holds it."""
        lock = self._locks.get((namespace, name))
        if lock is None:
            lock = self._locks[(namespace, name)] = asyncio.Lock()
        return lock


async def reconcile_owner(runtime: WorkerRuntime, *, namespace: str, name: str) -> None:
    """Reconcile the OutboxWorker ``name`` after one of its children changed."""
    async with runtime.lock(namespace, name):
        body = await runtime.kube.get(resource_path(API_VERSION, "outboxworkers", namespace, name))
        if body is not None and body["metadata"].get("deletionTimestamp") is None:
            await _reconcile(runtime, body)


async def reconcile(runtime: WorkerRuntime, body: Mapping[str, Any]) -> None:
    meta = body["metadata"]
    async with runtime.lock(meta["namespace"], meta["name"]):
        await _reconcile(runtime, body)


async def _reconcile(runtime: WorkerRuntime, body: Mapping[str, Any]) -> None:
    meta = body["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    ref = ObjectRef(
        kind="OutboxWorker", plural="outboxworkers", namespace=namespace, name=name, uid=uid
    )
    generation = int(meta.get("generation", 1))
    existing = (body.get("status") or {}).get("conditions") or []
    try:
        spec = OutboxWorkerSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        message = definitions.describe(error, path="spec")
        await runtime.kube.patch_status(
            ref,
            {
                "observedGeneration": generation,
                "conditions": conditions.upsert(
                    existing,
                    type="Ready",
                    status=False,
                    reason="InvalidSpec",
                    message=message,
                    generation=generation,
                    now=runtime.clock(),
                ),
            },
        )
        return
    deployment = workers.deployment(
        spec, name=name, namespace=namespace, uid=uid, image=runtime.image
    )
    child = deployment["metadata"]["name"]
    deployment_path = resource_path("apps/v1", "deployments", namespace, child)
    hpa_path = resource_path("autoscaling/v2", "horizontalpodautoscalers", namespace, child)
    applied = await runtime.kube.apply(deployment_path, deployment)
    if workers.autoscaled(spec):
        await runtime.kube.apply(
            hpa_path, workers.autoscaler(spec, name=name, namespace=namespace, uid=uid)
        )
    else:
        await runtime.kube.delete(hpa_path)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "selector": workers.selector(name),
        "replicas": (applied.get("status") or {}).get("replicas", 0),
        "readyReplicas": (applied.get("status") or {}).get("readyReplicas", 0),
    }
    ready, reason, message = True, "Reconciled", "Deployment applied"
    try:
        url = await runtime.kube.read(
            namespace=namespace,
            name=spec.database.url_secret_ref.name,
            key=spec.database.url_secret_ref.key,
        )
        found = await backlog.read(url, spec.database.table)
        status |= {
            "pendingEvents": found.pending,
            "oldestPendingSeconds": round(found.oldest_pending_seconds, 3),
            "deadEvents": found.dead,
        }
    except Exception as error:  # missing Secret or table, bad URL, database down: say so
        ready, reason, message = False, "BacklogUnknown", f"cannot read the outbox: {error}"
    status["conditions"] = conditions.upsert(
        existing,
        type="Ready",
        status=ready,
        reason=reason,
        message=message,
        generation=generation,
        now=runtime.clock(),
    )
    await runtime.kube.patch_status(ref, status)
