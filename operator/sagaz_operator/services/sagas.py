"""Start or resume one Saga: resolve and snapshot its definition, fence it, run its executor.

A saga's first run resolves its definition (inline, or the referenced SagaDefinition, from
the watch's cache: ``services.definition_cache``), checks it and the input, and records the
snapshot in PostgreSQL; every later run — after an operator restart, or on another replica —
rebuilds the state from the journal and goes on. A saga that cannot run (missing or invalid
definition, bad input, input the journal cannot store) is journaled as rejected and ends
``Failed`` with the reason: it does not wait for the definition to appear, so a mistyped name
fails fast instead of hanging; fix it and create the Saga again. This service only gathers;
``domain.verdict`` decides, and the record is journaled together with the verdict
(``SagaStarted`` or ``SagaRejected``) in one transaction.

An unexpected error for one saga (a bug, a value the journal refuses) does not escape to
Kopf, which would restart the daemon every 60 s without a word on the object: the saga shows
``Healthy=False`` (reason ``InternalError``) and a warning Event, and is tried again with
backoff, while every other saga goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sagaz_operator import metrics
from sagaz_operator.adapters.kube import Kube, KubeError, ObjectRef, resource_path
from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.domain import conditions, state, storable, verdict
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import SagaUid
from sagaz_operator.domain.record import SagaRecord, Stored
from sagaz_operator.errors import StoreConflictError, StoreUnavailableError
from sagaz_operator.services import levers, tracing
from sagaz_operator.services.definition_cache import DefinitionCache
from sagaz_operator.services.executor import (
    Clock,
    Controls,
    Executor,
    FencedError,
    Stopped,
    wait_stopped,
)
from sagaz_operator.services.pacing import StatusBudget
from sagaz_operator.services.ports import Locks, SagaStore
from sagaz_operator.services.reporting import Reporter
from sagaz_operator.services.statuses import StatusOutbox
from sagaz_operator.services.steps import SagaContext, StepRunner

logger = logging.getLogger(__name__)

#: How often a saga fenced by another operator process is tried again.
LOCK_RETRY_SECONDS = 5.0

#: Waits before trying a saga again after an unexpected error, in seconds (then the last).
CRASH_BACKOFF = (1.0, 5.0, 15.0, 60.0, 300.0)


@dataclass(frozen=True, kw_only=True)
class SagaRuntime:
    """The shared adapters every saga's executor uses."""

    kube: Kube
    journal: SagaStore
    locks: Locks
    runner: StepRunner
    clock: Clock
    outbox: StatusOutbox  # finished sagas' last status and Event, retried past this run
    status_interval: float = 1.0
    status_budget: StatusBudget | None = None  # shared by every saga of the process
    crash_backoff: Sequence[float] = CRASH_BACKOFF
    tracer: tracing.Tracer = tracing.NO_TRACING
    definitions: DefinitionCache = field(default_factory=DefinitionCache)  # empty: ask the API


class _BoundJournal:
    """The executor's journal port: one saga's record and version over the shared journal."""

    def __init__(self, journal: SagaStore, record: SagaRecord, version: int) -> None:
        self._journal, self.record, self.version = journal, record, version

    async def append(self, events: Sequence[ev.Event], *, after: state.SagaState) -> None:
        self.version = await self._journal.append(
            self.record,
            version=self.version,
            events=events,
            phase=after.phase.value,
            finished=after.finished,
        )


class _Fence:
    """The executor's fence: this process holds the saga's advisory lock."""

    def __init__(self, locks: Locks, uid: str) -> None:
        self._locks, self._uid = locks, uid

    async def ensure(self) -> bool:
        if self._locks.holds(self._uid):
            return True
        # The lock connection was replaced (database restart): take the lock again, unless
        # another operator took it meanwhile.
        return await self._locks.try_acquire(self._uid)


async def run(
    runtime: SagaRuntime,
    *,
    body: Mapping[str, Any],
    controls: Controls,
    stopped: Stopped,
) -> None:
    """Run the saga in ``body`` (a live view of the object) until it finishes or is stopped.

    Only the holder of the saga's advisory lock runs it; whoever loses the lock starts over
    from the journal once it has it again.
    """
    meta = body["metadata"]
    uid = str(meta["uid"])
    crashes = 0
    while not stopped.is_set():
        try:
            acquired = await runtime.locks.try_acquire(uid)
        except StoreUnavailableError as error:
            logger.warning("saga %s: database unavailable (%s); waiting", meta["name"], error)
            acquired = False
        if not acquired:
            await wait_stopped(stopped, LOCK_RETRY_SECONDS)
            continue
        metrics.sagas_active.inc()
        crash: Exception | None = None
        try:
            final = await _run_fenced(runtime, body=body, controls=controls, stopped=stopped)
        except FencedError as error:
            logger.warning("saga %s: lost its fence (%s); starting over", meta["name"], error)
            continue
        except StoreUnavailableError as error:
            logger.warning("saga %s: database unavailable (%s); waiting", meta["name"], error)
            await wait_stopped(stopped, LOCK_RETRY_SECONDS)
            continue
        except Exception as error:  # one saga's bug must not crash-loop its daemon in silence
            crash = error
        finally:
            metrics.sagas_active.dec()
            await runtime.locks.release(uid)
        if crash is not None:  # reported, then tried again later, without holding the lock
            delay = runtime.crash_backoff[min(crashes, len(runtime.crash_backoff) - 1)]
            crashes += 1
            logger.error(
                "saga %s: internal error; trying again in %gs",
                meta["name"],
                delay,
                exc_info=crash,
            )
            await _report_health(runtime, body, error=crash, retry_in=delay)
            await wait_stopped(stopped, delay)
            continue
        if crashes:
            await _report_health(runtime, body, error=None, retry_in=0)
        if final.finished_at is not None:  # no longer active while it waits out its TTL
            if await levers.await_retry(
                body=body, controls=controls, final=final, stopped=stopped, clock=runtime.clock
            ):
                continue  # spec.retry was raised: run it again from the journal
            await _expire(runtime, body=body, finished_at=final.finished_at, stopped=stopped)
        return


async def _report_health(
    runtime: SagaRuntime, body: Mapping[str, Any], *, error: Exception | None, retry_in: float
) -> None:
    """Show on the saga that it hit an unexpected error (``Healthy=False``), or is past it."""
    meta = body["metadata"]
    ref = _ref(body)
    if error is None:
        reason, message = "Recovered", "running again after an internal error"
    else:
        detail = storable.text(f"{type(error).__name__}: {error}", limit=512)
        reason, message = "InternalError", f"{detail}; trying again in {retry_in:g}s"
    status = {
        "conditions": conditions.upsert(
            (body.get("status") or {}).get("conditions") or [],
            type="Healthy",
            status=error is None,
            reason=reason,
            message=message,
            generation=int(meta.get("generation", 1)),
            now=runtime.clock(),
        )
    }
    try:
        await runtime.kube.patch_status(ref, status)
        await runtime.kube.post_event(
            ref, reason=reason, message=message, warning=error is not None
        )
    except KubeError as failure:  # the log has it; the next try reports again
        logger.warning("saga %s: health not reported: %s", meta["name"], failure)


def _ref(body: Mapping[str, Any]) -> ObjectRef:
    meta = body["metadata"]
    return ObjectRef(
        kind="Saga",
        plural="sagas",
        namespace=meta["namespace"],
        name=meta["name"],
        uid=str(meta["uid"]),
    )


async def _expire(
    runtime: SagaRuntime, *, body: Mapping[str, Any], finished_at: datetime, stopped: Stopped
) -> None:
    """Delete the finished saga once ``spec.ttlSecondsAfterFinished`` has passed."""
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None:
        return
    remaining = (finished_at + timedelta(seconds=int(ttl)) - runtime.clock()).total_seconds()
    if remaining > 0 and await wait_stopped(stopped, remaining):
        return  # the operator stops, or the saga is already being deleted
    meta = body["metadata"]
    await runtime.kube.delete(resource_path(API_VERSION, "sagas", meta["namespace"], meta["name"]))
    logger.info(
        "saga %s/%s deleted: ttlSecondsAfterFinished passed", meta["namespace"], meta["name"]
    )


async def _run_fenced(
    runtime: SagaRuntime, *, body: Mapping[str, Any], controls: Controls, stopped: Stopped
) -> state.SagaState:
    """Run the saga as far as it goes (until it finishes or ``stopped``); its last state."""
    meta = body["metadata"]
    uid = str(meta["uid"])
    stored = await runtime.journal.load(uid)
    judged, first = await _judge(runtime, body, stored)
    record = judged.record
    journal_entries = stored.journal if stored is not None else []
    current = state.replay(
        state.initial(uid=SagaUid(uid), definition=judged.definition), journal_entries
    )
    journal = _BoundJournal(runtime.journal, record, version=len(journal_entries))
    if first is not None:
        try:
            await _journal_verdict(
                runtime,
                journal,
                first,
                after=state.evolve(current, first),
                recorded=stored is not None,
            )
        except StoreConflictError as error:  # another writer was first: start over from it
            raise FencedError(str(error)) from error
    reporter = Reporter(
        kube=runtime.kube,
        outbox=runtime.outbox,
        ref=_ref(body),
        definition_name=record.definition_name,
        definition_generation=record.definition_generation,
        generation=lambda: int(body["metadata"].get("generation", 1)),
        clock=runtime.clock,
        interval=runtime.status_interval,
        budget=runtime.status_budget,
        shown=body.get("status"),
    )
    try:
        if first is not None:
            current = state.evolve(current, first)
            reporter.observe(first, current)
        if current.finished and controls.retry <= current.retry_seen:
            reporter.publish(current)
            return current  # nothing to do; a new spec.retry is the executor's to journal
        executor = Executor(
            saga=SagaContext(
                uid=uid,
                name=meta["name"],
                namespace=meta["namespace"],
                input=record.input,
            ),
            current=current,
            journal=journal,
            runner=runtime.runner,
            observer=reporter,
            controls=controls,
            clock=runtime.clock,
            fence=_Fence(runtime.locks, uid),
            tracer=runtime.tracer,
        )
        return await executor.run(stopped)
    finally:
        await reporter.close()


async def _judge(
    runtime: SagaRuntime, body: Mapping[str, Any], stored: Stored | None
) -> tuple[verdict.Verdict, ev.SagaStarted | ev.SagaRejected | None]:
    """The saga's verdict, and its first event if that is still to be journaled."""
    if stored is None:
        judged = verdict.decide(body, referenced=await _gather(runtime, body))
        return judged, judged.first_event(runtime.clock())
    judged = verdict.rederive(stored.record)
    if not stored.journal:
        # Journaled by an operator that wrote the record before (and apart from) its verdict.
        return judged, judged.first_event(runtime.clock())
    return judged, None


async def _journal_verdict(
    runtime: SagaRuntime,
    journal: _BoundJournal,
    first: ev.Event,
    *,
    after: state.SagaState,
    recorded: bool,
) -> None:
    """Journal the first event: with the record, in one transaction, unless that exists."""
    if recorded:
        await journal.append([first], after=after)
        return
    await runtime.journal.start(
        journal.record, first=first, phase=after.phase.value, finished=after.finished
    )
    journal.version = 1


async def _gather(runtime: SagaRuntime, body: Mapping[str, Any]) -> verdict.Referenced | None:
    """The SagaDefinition the saga references, as the operator's watch of them last showed
    it, else as the API has it now (None: it names none)."""
    name = verdict.referenced_name(body)
    if name is None:
        return None
    namespace = body["metadata"]["namespace"]
    cached = runtime.definitions.get(namespace, name)
    if cached is not None:
        return cached
    found = await runtime.kube.get(resource_path(API_VERSION, "sagadefinitions", namespace, name))
    if found is None:
        return verdict.Referenced(name=name, spec=None)
    return verdict.Referenced(
        name=name,
        spec=found.get("spec") or {},
        generation=int(found["metadata"].get("generation", 1)),
    )
