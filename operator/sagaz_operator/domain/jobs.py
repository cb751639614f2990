"""Job participants, decided purely: the Job for an attempt, its outcome, the pod policy.

**One Job per attempt.** An attempt's Job has a deterministic name derived from the saga
uid, the step, the purpose and the attempt number, so a restarted operator finds (adopts) the
Job it created instead of creating another, and a retry gets a fresh Job. Retries stay the
engine's business — same backoff, per-attempt timeout, journal and Events as HTTP steps —
while the Job's own ``backoffLimit`` (default 0) covers pod restarts within one attempt.

**Policy.** A Job step's pod spec comes from the definition, so whoever may create Sagas may
run pods in that namespace. The operator's ``JobPolicy`` can switch Job steps off, limit
images and service accounts, and refuses host access (host network/PID/IPC, hostPath
volumes, privileged containers, privilege escalation) unless explicitly allowed.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.domain.model import Attempt, JobCall, Json


@dataclass(frozen=True, kw_only=True)
class JobPolicy:
    enabled: bool = True
    allowed_images: tuple[str, ...] = ()  # glob patterns; empty: any image
    allowed_service_accounts: tuple[str, ...] = ()  # empty: any
    allow_host_access: bool = False


@dataclass(frozen=True, kw_only=True)
class Outcome:
    succeeded: bool
    reason: str = ""
    message: str = ""


def name(attempt: Attempt) -> str:
    """``<saga>-<step>-<hash>-a<attempt>`` (``c`` for compensations), at most 63 characters."""
    digest = hashlib.sha256(attempt.idempotency_key.encode()).hexdigest()[:8]
    head = f"{attempt.saga_name[:20].rstrip('-.')}-{attempt.step[:20].rstrip('-')}"
    return f"{head}-{digest}-{attempt.purpose[0]}{attempt.number}"


def manifest(
    call: JobCall, *, attempt: Attempt, saga_input: Json, outputs: Mapping[str, Json]
) -> dict[str, Any]:
    labels = {
        "sagaz.io/saga": attempt.saga_name,
        "sagaz.io/saga-uid": attempt.saga_uid,
        "sagaz.io/step": attempt.step,
        "sagaz.io/purpose": attempt.purpose,
        "sagaz.io/attempt": str(attempt.number),
    }
    template: dict[str, Any] = copy.deepcopy(dict(call.template))
    metadata = template.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    pod = template.setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    env = [
        {"name": "SAGA_NAME", "value": attempt.saga_name},
        {"name": "SAGA_UID", "value": attempt.saga_uid},
        {"name": "SAGA_STEP", "value": attempt.step},
        {"name": "SAGA_PURPOSE", "value": attempt.purpose},
        {"name": "SAGA_ATTEMPT", "value": str(attempt.number)},
        {"name": "SAGA_INPUT", "value": json.dumps(saga_input)},
        {"name": "SAGA_OUTPUTS", "value": json.dumps(dict(outputs))},
    ]
    for container in pod.get("containers") or []:
        container["env"] = [*env, *(container.get("env") or [])]
    spec: dict[str, Any] = {"backoffLimit": call.backoff_limit, "template": template}
    if call.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = call.active_deadline_seconds
    if call.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = call.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name(attempt),
            "namespace": attempt.namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Saga",
                    "name": attempt.saga_name,
                    "uid": attempt.saga_uid,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def outcome(job: Mapping[str, Any]) -> Outcome | None:
    """The Job's outcome from its conditions; None while it runs."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return Outcome(succeeded=True)
        if condition.get("type") == "Failed":
            return Outcome(
                succeeded=False,
                reason=condition.get("reason") or "Failed",
                message=condition.get("message") or "",
            )
    return None


def output(termination_message: str | None) -> Json:
    """The step output: the JSON the first container wrote as its termination message.

    Raises ValueError (with a message for the step error) when it is not JSON.
    """
    if not termination_message or not termination_message.strip():
        return None
    try:
        parsed: Json = json.loads(termination_message)
    except json.JSONDecodeError as error:
        shown = termination_message[:120]
        raise ValueError(f"the termination message is not JSON ({error.msg}): {shown!r}") from error
    return parsed


def policy_problems(template: Mapping[str, Any], policy: JobPolicy) -> list[str]:
    """Why ``policy`` refuses this pod template, each naming the field; empty when allowed."""
    if not policy.enabled:
        return ["Job steps are disabled by the operator's settings (SAGAZ_JOB_STEPS)"]
    pod = template.get("spec") or {}
    found = []
    # The deprecated serviceAccount is what the pod runs as when serviceAccountName is empty.
    field = (
        "serviceAccount"
        if pod.get("serviceAccount") and not pod.get("serviceAccountName")
        else "serviceAccountName"
    )
    account = pod.get(field) or "default"
    if policy.allowed_service_accounts and account not in policy.allowed_service_accounts:
        found.append(f"template.spec.{field} {account!r} is not allowed")
    if not policy.allow_host_access:
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(field):
                found.append(f"template.spec.{field} is not allowed")
        for index, volume in enumerate(pod.get("volumes") or []):
            if "hostPath" in volume:
                found.append(f"template.spec.volumes[{index}].hostPath is not allowed")
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(kind) or []):
            where = f"template.spec.{kind}[{index}]"
            image = container.get("image") or ""
            if policy.allowed_images and not any(
                fnmatch.fnmatchcase(image, pattern) for pattern in policy.allowed_images
            ):
                found.append(f"{where}.image {image!r} is not in the allowed images")
            security = container.get("securityContext") or {}
            if not policy.allow_host_access and security.get("privileged"):
                found.append(f"{where}.securityContext.privileged is not allowed")
            if not policy.allow_host_access and security.get("allowPrivilegeEscalation"):
                found.append(f"{where}.securityContext.allowPrivilegeEscalation is not allowed")
    return found
