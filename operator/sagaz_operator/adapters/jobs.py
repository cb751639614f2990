"""Job participants: create (or adopt) an attempt's Job and wait for it, without polling.

Kopf watches Jobs labelled ``sagaz.io/saga`` and hands every change to ``observe``, which
wakes the attempts waiting on that Job. ``run`` registers its waiter first and reads the
Job once after, so a Job that finished in between is not missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sagaz_operator.adapters.kube import ApiError, ApiUnreachableError, Kube, KubeError
from sagaz_operator.domain import jobs
from sagaz_operator.domain.model import Attempt, JobCall, Json
from sagaz_operator.errors import PermanentParticipantError, RetryableParticipantError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    call: JobCall  # already template-rendered
    attempt: Attempt
    saga_input: Json
    outputs: Mapping[str, Json]


def _path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    return f"{base}/{name}" if name else base


class JobParticipants:
    def __init__(self, *, kube: Kube, policy: jobs.JobPolicy) -> None:
        self._kube = kube
        self._policy = policy
        self._waiters: dict[tuple[str, str], set[asyncio.Future[jobs.Outcome]]] = {}

    def observe(self, job: Mapping[str, Any]) -> None:
        """Called for every watched Job change; wakes whoever waits for a finished Job."""
        outcome = jobs.outcome(job)
        if outcome is None:
            return
        meta = job["metadata"]
        for waiter in self._waiters.get((meta["namespace"], meta["name"]), set()):
            if not waiter.done():
                waiter.set_result(outcome)

    async def run(self, request: JobRequest) -> Json:
        problems = jobs.policy_problems(request.call.template, self._policy)
        if problems:
            raise PermanentParticipantError(f"Job step refused: {'; '.join(problems)}")
        name = jobs.name(request.attempt)
        key = (request.attempt.namespace, name)
        waiter: asyncio.Future[jobs.Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(waiter)
        try:
            job = await self._create_or_adopt(request, name)
            outcome = jobs.outcome(job) or await waiter
        finally:
            waiters = self._waiters.get(key, set())
            waiters.discard(waiter)
            if not waiters:
                self._waiters.pop(key, None)
        if not outcome.succeeded:
            # A failed Job may have done part of its work: retry, and compensate if it fails.
            raise RetryableParticipantError(
                f"Job {name} failed: {outcome.reason}: {outcome.message}".rstrip(": "),
                outcome_unknown=True,
            )
        try:
            return await self._output(request.attempt.namespace, name)
        except KubeError as error:  # the Job did its work; only reading its output failed
            raise RetryableParticipantError(
                f"cannot read the output of Job {name}: {error}", outcome_unknown=True
            ) from error

    async def stop(self, *, namespace: str, name: str) -> None:
        """Delete an attempt's Job (and its pods) after a timeout or cancellation."""
        try:
            await self._kube.delete(_path(namespace, name), propagation="Background")
        except KubeError as error:
            logger.warning("could not delete Job %s/%s: %s", namespace, name, error)

    async def _create_or_adopt(self, request: JobRequest, name: str) -> dict[str, Any]:
        body = jobs.manifest(
            request.call,
            attempt=request.attempt,
            saga_input=request.saga_input,
            outputs=request.outputs,
        )
        try:
            return await self._kube.create(_path(request.attempt.namespace), body)
        except ApiUnreachableError as error:  # it may exist now: the retry's Job is another
            raise RetryableParticipantError(
                f"cannot create Job {name}: {error}", outcome_unknown=True
            ) from error
        except ApiError as error:
            if error.status == 422:
                raise PermanentParticipantError(f"Job {name} is invalid: {error}") from error
            if error.status != 409:
                raise RetryableParticipantError(f"cannot create Job {name}: {error}") from error
        existing = await self._kube.get(_path(request.attempt.namespace, name))
        labels = ((existing or {}).get("metadata") or {}).get("labels") or {}
        if existing is None or labels.get("sagaz.io/saga-uid") != request.attempt.saga_uid:
            raise PermanentParticipantError(f"a Job named {name} exists but is not this saga's")
        logger.info("adopted existing Job %s/%s", request.attempt.namespace, name)
        return existing

    async def _output(self, namespace: str, name: str) -> Json:
        pods = await self._kube.get(
            f"/api/v1/namespaces/{namespace}/pods?labelSelector=job-name%3D{name}"
        )
        for pod in (pods or {}).get("items") or []:
            if (pod.get("status") or {}).get("phase") != "Succeeded":
                continue
            statuses = pod["status"].get("containerStatuses") or []
            first = pod["spec"]["containers"][0]["name"]
            for status in statuses:
                if status.get("name") == first:
                    message = ((status.get("state") or {}).get("terminated") or {}).get("message")
                    try:
                        return jobs.output(message)
                    except ValueError as error:
                        raise PermanentParticipantError(f"Job {name}: {error}") from error
        return None
