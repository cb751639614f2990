"""The value behind ``sagaz_outbox_pending_events{outboxworker=<name>}``: the backlog of the
OutboxWorker's own outbox table, read the way its status reads it (``services.outboxworkers``).

Every worker of an OutboxWorker shares one table (the partitions divide it among them), so its
pending rows are the fleet's work; the HPA divides them by ``targetPendingEventsPerReplica``.
The database Secret is used under the same opt-in label as for the reconciler.
"""

from __future__ import annotations

import pydantic

from sagaz_operator.adapters.kube import Kube, resource_path
from sagaz_operator.adapters.postgres import backlog
from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.api.outboxworker import OUTBOX_DATABASE_LABEL, OutboxWorkerSpec
from sagaz_operator.domain import definitions


class WorkerSpecError(ValueError):
    """The OutboxWorker's spec is invalid, so it names no table to read."""


async def pending_events(kube: Kube, namespace: str, name: str) -> int:
    """Pending rows of the OutboxWorker's table; ``LookupError`` if it or its Secret is missing."""
    body = await kube.get(resource_path(API_VERSION, "outboxworkers", namespace, name))
    if body is None:
        raise LookupError(f"no OutboxWorker {name} in namespace {namespace}")
    try:
        spec = OutboxWorkerSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        raise WorkerSpecError(definitions.describe(error, path="spec")) from error
    secret = spec.database.url_secret_ref
    url = await kube.read(
        namespace=namespace, name=secret.name, key=secret.key, opt_in_label=OUTBOX_DATABASE_LABEL
    )
    return (await backlog.read(url, spec.database.table)).pending
