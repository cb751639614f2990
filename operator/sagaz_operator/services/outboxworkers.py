"""Reconciles an OutboxWorker into its Deployment and HPA, and reports the fleet's status.

Every reconcile applies the whole desired state (server-side apply, forced), so a spec change,
a manual edit of a child, or a deleted child all converge the same way. Children carry an
owner reference, so deleting the OutboxWorker lets Kubernetes' garbage collector remove them.
The backlog shown in the status is read from the outbox table itself.

The database Secret is mounted into the worker pods, whose image the OutboxWorker's author
may choose, so a Secret is used only once its owner labelled it ``sagaz.io/outbox-database:
"true"`` (the operator may read the namespace's Secrets; the author may not). Until then no
Deployment is created, and one that exists is deleted when its Secret loses the label; a
Secret that is missing leaves an existing Deployment alone (its pods keep running) and
creates none.

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

from sagaz_operator import metrics
from sagaz_operator.adapters.kube import Kube, ObjectRef, resource_path
from sagaz_operator.adapters.postgres import backlog
from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.api.outboxworker import OUTBOX_DATABASE_LABEL, OutboxWorkerSpec
from sagaz_operator.domain import conditions, definitions, workers
from sagaz_operator.errors import SecretNotOptedInError
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
    secret = spec.database.url_secret_ref
    status: dict[str, Any] = {"observedGeneration": generation, "selector": workers.selector(name)}
    try:
        url = await runtime.kube.read(
            namespace=namespace,
            name=secret.name,
            key=secret.key,
            opt_in_label=OUTBOX_DATABASE_LABEL,
        )
    except SecretNotOptedInError as error:
        await runtime.kube.delete(hpa_path)
        await runtime.kube.delete(deployment_path)
        status |= {"replicas": 0, "readyReplicas": 0}
        ready, reason = False, "SecretNotOptedIn"
        message = f"spec.database.urlSecretRef: {error}; no worker is started"
    except LookupError as error:
        ready, reason = False, "SecretNotFound"
        message = f"spec.database.urlSecretRef: {error}; no worker is started"
    else:
        applied = await runtime.kube.apply(deployment_path, deployment)
        if workers.autoscaled(spec):
            await runtime.kube.apply(
                hpa_path, workers.autoscaler(spec, name=name, namespace=namespace, uid=uid)
            )
        else:
            await runtime.kube.delete(hpa_path)
        status |= {
            "replicas": (applied.get("status") or {}).get("replicas", 0),
            "readyReplicas": (applied.get("status") or {}).get("readyReplicas", 0),
        }
        ready, reason, message = True, "Reconciled", "Deployment applied"
        try:
            found = await backlog.read(url, spec.database.table)
            status |= {
                "pendingEvents": found.pending,
                "oldestPendingSeconds": round(found.oldest_pending_seconds, 3),
                "deadEvents": found.dead,
            }
        except Exception as error:  # missing table, bad URL, database down: say so
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
    if "replicas" in status:
        metrics.outboxworker_replicas.labels(namespace, name).set(status["replicas"])
        metrics.outboxworker_ready_replicas.labels(namespace, name).set(status["readyReplicas"])
    await runtime.kube.patch_status(ref, status)
