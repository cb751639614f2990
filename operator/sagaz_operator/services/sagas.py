"""Start or resume one Saga: resolve and snapshot its definition, fence it, run its executor.

A saga's first run resolves its definition (inline, or the referenced SagaDefinition),
checks it and the input, and records the snapshot in PostgreSQL; every later run — after an
operator restart, or on another replica — rebuilds the state from the journal and goes on.
A saga that cannot run (missing or invalid definition, bad input) is journaled as rejected
and ends ``Failed`` with the reason: it does not wait for the definition to appear, so a
mistyped name fails fast instead of hanging; fix it and create the Saga again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pydantic

from sagaz_operator import metrics
from sagaz_operator.adapters.kube import Kube, ObjectRef, resource_path
from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError
from sagaz_operator.adapters.postgres.journal import Journal, SagaRecord
from sagaz_operator.adapters.postgres.locks import SagaLocks
from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.api.saga import SagaSpec
from sagaz_operator.domain import definitions, inputs, state
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Definition, Json, SagaUid
from sagaz_operator.errors import DefinitionError
from sagaz_operator.services import levers
from sagaz_operator.services.executor import (
    Clock,
    Controls,
    Executor,
    FencedError,
    Stopped,
    wait_stopped,
)
from sagaz_operator.services.reporting import Reporter
from sagaz_operator.services.steps import SagaContext, StepRunner

logger = logging.getLogger(__name__)

#: How often a saga fenced by another operator process is tried again.
LOCK_RETRY_SECONDS = 5.0

#: Stands in for the definition of a saga rejected before one could be resolved.
_NOTHING = Definition(steps=())


@dataclass(frozen=True, kw_only=True)
class SagaRuntime:
    """The shared adapters every saga's executor uses."""

    kube: Kube
    journal: Journal
    locks: SagaLocks
    runner: StepRunner
    clock: Clock
    status_interval: float = 1.0


class _BoundJournal:
    """The executor's journal port: one saga's record and version over the shared journal."""

    def __init__(self, journal: Journal, record: SagaRecord, version: int) -> None:
        self._journal, self._record, self.version = journal, record, version

    async def append(self, events: Sequence[ev.Event], *, after: state.SagaState) -> None:
        self.version = await self._journal.append(
            self._record,
            version=self.version,
            events=events,
            phase=after.phase.value,
            finished=after.finished,
        )


class _Fence:
    """The executor's fence: this process holds the saga's advisory lock."""

    def __init__(self, locks: SagaLocks, uid: str) -> None:
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
    while not stopped.is_set():
        try:
            acquired = await runtime.locks.try_acquire(uid)
        except DatabaseUnavailableError as error:
            logger.warning("saga %s: database unavailable (%s); waiting", meta["name"], error)
            acquired = False
        if not acquired:
            await wait_stopped(stopped, LOCK_RETRY_SECONDS)
            continue
        metrics.sagas_active.inc()
        try:
            final = await _run_fenced(runtime, body=body, controls=controls, stopped=stopped)
        except FencedError as error:
            logger.warning("saga %s: lost its fence (%s); starting over", meta["name"], error)
            continue
        except DatabaseUnavailableError as error:
            logger.warning("saga %s: database unavailable (%s); waiting", meta["name"], error)
            await wait_stopped(stopped, LOCK_RETRY_SECONDS)
            continue
        finally:
            metrics.sagas_active.dec()
            await runtime.locks.release(uid)
        if final.finished_at is not None:  # no longer active while it waits out its TTL
            if await levers.await_retry(
                body=body, controls=controls, final=final, stopped=stopped, clock=runtime.clock
            ):
                continue  # spec.retry was raised: run it again from the journal
            await _expire(runtime, body=body, finished_at=final.finished_at, stopped=stopped)
        return


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
    if stored is None:
        record, definition, rejection = await _resolve(runtime, body)
        await runtime.journal.create(record)
        journal_entries: list[ev.Event] = []
    else:
        record, journal_entries, rejection = stored.record, stored.journal, None
        definition = _snapshot(record)
    current = state.replay(
        state.initial(uid=SagaUid(uid), definition=definition or _NOTHING), journal_entries
    )
    ref = ObjectRef(
        kind="Saga", plural="sagas", namespace=meta["namespace"], name=meta["name"], uid=uid
    )
    reporter = Reporter(
        kube=runtime.kube,
        ref=ref,
        definition_name=record.definition_name,
        definition_generation=record.definition_generation,
        generation=lambda: int(body["metadata"].get("generation", 1)),
        clock=runtime.clock,
        interval=runtime.status_interval,
    )
    journal = _BoundJournal(runtime.journal, record, version=len(journal_entries))
    try:
        if rejection is not None:
            rejected = ev.SagaRejected(at=runtime.clock(), message=rejection)
            await journal.append([rejected], after=state.evolve(current, rejected))
            current = state.evolve(current, rejected)
            reporter.observe(rejected, current)
            reporter.publish(current)
            return current
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
        )
        return await executor.run(stopped)
    finally:
        await reporter.close()


async def _resolve(
    runtime: SagaRuntime, body: Mapping[str, Any]
) -> tuple[SagaRecord, Definition | None, str | None]:
    """The record to journal, the definition to run, or why the saga cannot run."""
    meta = body["metadata"]
    raw_spec = body.get("spec") or {}
    saga_input: Json = raw_spec.get("input") or {}

    def record(name: str, generation: int, spec: dict[str, Json]) -> SagaRecord:
        return SagaRecord(
            uid=str(meta["uid"]),
            namespace=meta["namespace"],
            name=meta["name"],
            definition_name=name,
            definition_generation=generation,
            definition=spec,
            input=saga_input,
        )

    try:
        spec = SagaSpec.model_validate(raw_spec)
    except pydantic.ValidationError as error:
        return record("", 0, {}), None, definitions.describe(error, path="spec")
    if spec.definition is not None:
        source = spec.definition.model_dump(mode="json", by_alias=True, exclude_none=True)
        name, generation, where = "", int(meta.get("generation", 1)), "spec.definition"
    else:
        assert spec.definition_ref is not None  # the model guarantees exactly one
        name = spec.definition_ref.name
        found = await runtime.kube.get(
            resource_path(API_VERSION, "sagadefinitions", meta["namespace"], name)
        )
        if found is None:
            message = f"SagaDefinition '{name}' not found in namespace {meta['namespace']}"
            return record(name, 0, {}), None, message
        source = found.get("spec") or {}
        generation, where = int(found["metadata"].get("generation", 1)), "spec"
    try:
        parsed = definitions.parse(source, path=where)
        definition = definitions.build(parsed)
    except DefinitionError as error:
        label = f"SagaDefinition '{name}'" if name else "the inline definition"
        return record(name, generation, source), None, f"{label} is invalid: {error}"
    problems = inputs.problems(parsed.input_schema, saga_input)
    if problems:
        return record(name, generation, source), definition, "invalid input: " + "; ".join(problems)
    return record(name, generation, source), definition, None


def _snapshot(record: SagaRecord) -> Definition | None:
    """The definition the saga started with; None if it was rejected for an invalid one."""
    if not record.definition:
        return None
    try:
        return definitions.load(record.definition)
    except DefinitionError:
        return None
