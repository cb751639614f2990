"""What the UI shows of SagaDefinitions and OutboxWorkers, as the apiserver has them.

They are Kubernetes objects, not journal rows, so they are listed through the operator's
own client with its own credentials (its ClusterRole may list both kinds). A definition is
checked again here with the operator's own code, so a page shows each step's effective
timeout and retry policy (defaults applied), and an invalid definition shows the same
message as its ``Ready`` condition even before the operator has written one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagaz_operator.api.definition import GROUP, VERSION
from sagaz_operator.domain import definitions
from sagaz_operator.domain.model import Definition, HttpCall, RetryPolicy, Step
from sagaz_operator.errors import DefinitionError


def list_path(plural: str) -> str:
    """All objects of a sagaz.io kind in every namespace."""
    return f"/apis/{GROUP}/{VERSION}/{plural}"


def definition(item: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec = item["metadata"], item.get("spec") or {}
    ready = _condition(item, "Ready")
    body: dict[str, Any] = {
        "namespace": meta["namespace"],
        "name": meta["name"],
        "generation": meta.get("generation"),
        "ready": ready.get("status"),
        "reason": ready.get("reason"),
        "message": ready.get("message"),
    }
    try:
        loaded = definitions.load(spec)
    except DefinitionError as error:
        body.update(valid=False, error=str(error), steps=_raw_steps(spec))
        return body
    body.update(valid=True, error=None, **_loaded(loaded))
    return body


def worker(item: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec, status = item["metadata"], item.get("spec") or {}, item.get("status") or {}
    ready = _condition(item, "Ready")
    return {
        "namespace": meta["namespace"],
        "name": meta["name"],
        "table": ((spec.get("database") or {}).get("table")) or "sagaz_outbox",
        "topic": (spec.get("kafka") or {}).get("topic"),
        "replicas": status.get("replicas"),
        "readyReplicas": status.get("readyReplicas"),
        "pendingEvents": status.get("pendingEvents"),
        "oldestPendingSeconds": status.get("oldestPendingSeconds"),
        "deadEvents": status.get("deadEvents"),
        "ready": ready.get("status"),
        "message": ready.get("message"),
    }


def _loaded(loaded: Definition) -> dict[str, Any]:
    return {
        "failureStrategy": loaded.failure_strategy.value,
        "timeoutSeconds": loaded.timeout_seconds,
        "compensationRetry": _retry(loaded.compensation_retry),
        "steps": [_step(step) for step in loaded.steps],
    }


def _step(step: Step) -> dict[str, Any]:
    return {
        "name": step.name,
        "kind": step.kind.value,
        "dependsOn": list(step.depends_on),
        "timeoutSeconds": step.timeout_seconds,
        "retry": _retry(step.retry),
        "action": _call(step.action),
        "compensation": _call(step.compensation) if step.compensation is not None else None,
    }


def _call(call: object) -> str:
    """``http POST <url>`` or ``job``: enough to recognise a step; headers stay out."""
    if isinstance(call, HttpCall):
        return f"http {call.method} {call.url}"
    return "job"


def _retry(policy: RetryPolicy) -> dict[str, Any]:
    backoff = policy.backoff
    return {
        "maxAttempts": policy.max_attempts,
        "backoff": {
            "initialSeconds": backoff.initial_seconds,
            "factor": backoff.factor,
            "maxSeconds": backoff.max_seconds,
        },
    }


def _raw_steps(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The steps of an invalid definition, as far as they can be read, to draw what is there."""
    steps = spec.get("steps")
    if not isinstance(steps, list):
        return []
    drawn = []
    for step in steps:
        if isinstance(step, Mapping) and isinstance(step.get("name"), str):
            after = step.get("dependsOn")
            drawn.append(
                {
                    "name": step["name"],
                    "kind": str(step.get("kind") or "Compensatable"),
                    "dependsOn": [d for d in after if isinstance(d, str)]
                    if isinstance(after, list)
                    else [],
                }
            )
    return drawn


def _condition(item: Mapping[str, Any], kind: str) -> dict[str, Any]:
    for condition in (item.get("status") or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return dict(condition)
    return {}
