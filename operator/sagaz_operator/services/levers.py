"""The levers seen from outside a running executor: waiting for a retry, and refusing a
lever that does not apply (the rules are ``domain.levers``'s).

A finished saga's executor has stopped, so nobody would notice a change of its ``spec``. Two
things cover that: a saga a retry could revive (``CompensationFailed``, or ``Failed`` past
its Pivot) keeps its daemon waiting for ``spec.retry`` (``await_retry``), and the field
handlers call ``refuse_if_finished`` for the others, which writes the refusal on the
object (condition ``LeverRefused`` and a Warning Event) without journaling: the journal
belongs to the holder of the saga's lock, and the next executor to run the saga (after a
restart) journals the same refusal, reaching the same verdict from the same journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sagaz_operator.adapters.kube import Kube, ObjectRef
from sagaz_operator.adapters.postgres.journal import Journal
from sagaz_operator.api.saga import SagaPhase
from sagaz_operator.domain import conditions, definitions, levers, state
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Definition, SagaUid
from sagaz_operator.errors import DefinitionError
from sagaz_operator.services.executor import Clock, Controls, Stopped

logger = logging.getLogger(__name__)

CONDITION = "LeverRefused"


async def await_retry(
    *,
    body: Mapping[str, Any],
    controls: Controls,
    final: state.SagaState,
    stopped: Stopped,
    clock: Clock,
) -> bool:
    """Whether ``spec.retry`` was raised for a finished saga it may revive; waits for it until
    the saga's TTL (if any) runs out or ``stopped``. False at once for any other saga."""
    controls.parked = True  # until it runs again: the handlers judge the levers meanwhile
    if levers.retry_refusal(final) is not None:
        return False
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    assert final.finished_at is not None
    until = None if ttl is None else final.finished_at + timedelta(seconds=int(ttl))
    retried = await _wait_for_retry(controls, final, stopped=stopped, until=until, clock=clock)
    controls.parked = not retried
    return retried


async def _wait_for_retry(
    controls: Controls,
    final: state.SagaState,
    *,
    stopped: Stopped,
    until: datetime | None,
    clock: Clock,
) -> bool:
    while not stopped.is_set():
        controls.changed.clear()
        if controls.retry > final.retry_seen:
            return True
        timeout = None if until is None else (until - clock()).total_seconds()
        if timeout is not None and timeout <= 0:
            return False
        waiters = [
            asyncio.ensure_future(controls.changed.wait()),
            asyncio.ensure_future(stopped.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
    return False


async def refuse_if_finished(
    *, kube: Kube, journal: Journal, body: Mapping[str, Any], lever: str, clock: Clock
) -> None:
    """Write why ``spec.<lever>`` has no effect on this saga, if its executor is not running."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    now = clock()
    extra: dict[str, Any] = {}
    if lever == "retry":
        request = int(spec.get("retry") or 0)
        if request <= int(status.get("observedRetry") or 0):
            return
        verdict = await _retry_verdict(journal, body, request=request, at=now)
        if not isinstance(verdict, ev.RetryRefused):
            return  # it applies: the saga's executor will take it when it runs
        message = verdict.message
        extra["observedRetry"] = request
    else:
        if lever == "abort" and not spec.get("abort"):
            return
        phase = status.get("phase")
        refusal = levers.finished_refusal(SagaPhase(phase) if phase else None, lever)
        if refusal is None:
            return
        message = refusal
    await refuse(kube, body, lever=lever, message=message, at=now, extra=extra)


async def refuse(
    kube: Kube,
    body: Mapping[str, Any],
    *,
    lever: str,
    message: str,
    at: datetime,
    extra: Mapping[str, Any] | None = None,
) -> None:
    meta = body["metadata"]
    reason = f"{lever.capitalize()}Refused"
    generation = int(meta.get("generation", 1))
    status = {
        **(extra or {}),
        "conditions": conditions.upsert(
            (body.get("status") or {}).get("conditions") or [],
            type=CONDITION,
            status=True,
            reason=reason,
            message=message,
            generation=generation,
            now=at,
        ),
    }
    ref = ObjectRef(
        kind="Saga", plural="sagas", namespace=meta["namespace"], name=meta["name"], uid=meta["uid"]
    )
    logger.info("saga %s/%s: %s: %s", meta["namespace"], meta["name"], reason, message)
    await kube.patch_status(ref, status)
    await kube.post_event(ref, reason=reason, message=message, warning=True)


async def _retry_verdict(
    journal: Journal, body: Mapping[str, Any], *, request: int, at: datetime
) -> ev.Event | None:
    uid = str(body["metadata"]["uid"])
    stored = await journal.load(uid)
    if stored is None:
        return None  # not started yet: its executor decides
    definition = Definition(steps=())
    with contextlib.suppress(DefinitionError):
        if stored.record.definition:
            definition = definitions.load(stored.record.definition)
    current = state.replay(state.initial(uid=SagaUid(uid), definition=definition), stored.journal)
    if current.retry_seen >= request:
        return None
    return levers.retry(current, request=request, at=at)
