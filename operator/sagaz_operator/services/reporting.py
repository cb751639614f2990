"""What the outside world sees of a running saga: ``.status``, Kubernetes Events, metrics.

The status is a projection of the journal, so it may lag but never lead. It is coalesced:
``publish`` only records the latest state and a background task writes it at most once per
``interval``, the first time one ``interval`` after the first change — a burst of
transitions costs one PATCH, not one each, and a saga that finishes within one interval is
written once, at the end. When many sagas run at once the interval grows, so that their
progress stays within the process's budget of status writes (``services.pacing``) however
many there are; the end of each is still written at once. A write that fails is
tried again, backing off (``statuses.STATUS_BACKOFF``) while the API server is away.

A finished saga's final status and its terminal Event are not written here: ``close`` hands
them to the per-process status outbox (``services.statuses``), which retries them until they
land, so the executor releases the saga's lock without waiting out an API-server outage.
Other Events are for people and best effort: one that cannot be posted is logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sagaz_operator import metrics
from sagaz_operator.adapters.kube import ObjectRef
from sagaz_operator.api.saga import SagaPhase
from sagaz_operator.domain import backoff, codec, conditions, projection, state
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Json
from sagaz_operator.errors import SagazError
from sagaz_operator.services.executor import Clock
from sagaz_operator.services.pacing import StatusBudget
from sagaz_operator.services.statuses import STATUS_BACKOFF, Notice, Sleep, StatusOutbox

logger = logging.getLogger(__name__)

#: Journal events worth a best-effort Kubernetes Event: whether it is a warning, and its
#: ``action``. Events are for people (failures, compensation, the end), not a log: the
#: journal is the log, so a saga that succeeds gets one Event, at the end, and a compensated
#: one two: ``CompensationStarted`` (naming what failed) and the end. A failed attempt that
#: may be retried gets one (a person looking at a slow saga wants to see why); the attempt
#: that ends the step for good is named by ``CompensationStarted`` or the terminal Event, and
#: cancelled steps and each step compensated are only journaled. A failed compensation gets
#: one: it is what a person may have to act on. The terminal ones (SagaFinished,
#: SagaRejected) are ``terminal_notice``s, retried.
_EVENTS: dict[type[ev.Event], tuple[bool, str]] = {
    ev.StepFailed: (True, "Execute"),
    ev.CompensationStarted: (True, "Compensate"),
    ev.CompensationFailed: (True, "Compensate"),
    ev.RetryRequested: (False, "Retry"),
    ev.RetryRefused: (True, "Retry"),
}


#: How long ``close`` waits for best-effort Events still being posted: long enough for a
#: healthy API server, short enough that an outage never holds the saga's lock for long.
EVENTS_GRACE_SECONDS = 2.0

#: Best-effort Events still in flight after their reporter closed.
_STRAGGLERS: set[asyncio.Task[None]] = set()


class ReportingPort(Protocol):
    """The Kubernetes API as the reporter uses it; failures are ``SagazError``s that say
    whether a retry may help, and ``post_event`` never raises."""

    async def patch_status(
        self, ref: ObjectRef, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> None: ...

    async def post_event(
        self,
        ref: ObjectRef,
        *,
        reason: str,
        message: str,
        warning: bool = False,
        action: str = "Reconcile",
    ) -> None: ...


def terminal_notice(event: ev.Event) -> Notice | None:
    """The Event that says how a saga ended (``SagaSucceeded``, ``SagaRejected``...), if
    ``event`` is the one that ended it."""
    if isinstance(event, ev.SagaFinished):
        warning, action = event.outcome is not ev.Outcome.SUCCEEDED, "Finish"
    elif isinstance(event, ev.SagaRejected):
        warning, action = True, "Start"
    else:
        return None
    return Notice(
        reason=codec.public_type(event), message=_describe(event), warning=warning, action=action
    )


class Reporter:
    def __init__(
        self,
        *,
        kube: ReportingPort,
        outbox: StatusOutbox,
        ref: ObjectRef,
        definition_name: str,
        definition_generation: int,
        generation: Callable[[], int],
        clock: Clock,
        interval: float = 1.0,
        budget: StatusBudget | None = None,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        shown: Mapping[str, Any] | None = None,
    ) -> None:
        """``shown``: the status the object shows now; a status equal to it is not written
        (a finished saga taken in again at a restart or a rebalance costs no write)."""
        self._kube = kube
        self._budget = budget
        self._outbox = outbox
        self._sleep = sleep
        self._jitter = jitter
        self._terminal: Notice | None = None
        self._ref = ref
        self._definition = (definition_name, definition_generation)
        self._generation = generation
        self._clock = clock
        self._interval = interval
        self._latest: state.SagaState | None = None
        self._written: dict[str, Json] | None = copy.deepcopy(dict(shown)) if shown else None
        self._dirty = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self._conditions: list[dict[str, Json]] = []
        self._database_ok = True
        self._label = metrics.definition(definition_name)
        self._in_flight: SagaPhase | None = None  # the phase counted in sagas_in_flight

    # -- Observer ----------------------------------------------------------------------------

    def observe(self, event: ev.Event, current: state.SagaState) -> None:
        metrics.journal_events.labels(type(event).__name__).inc()
        _count(event, current, self._label)
        self._count_phase(current)
        terminal = terminal_notice(event)
        if terminal is not None:  # retried with the final status, see close()
            self._terminal = terminal
            return
        posted = _EVENTS.get(type(event))
        if posted is not None and _worth_an_event(event):
            warning, action = posted
            self._post(
                codec.public_type(event), _describe(event, current), warning=warning, action=action
            )
        if isinstance(event, ev.RetryRequested | ev.RetryRefused):
            self._retry_condition(event)

    def _retry_condition(self, event: ev.RetryRequested | ev.RetryRefused) -> None:
        """``LeverRefused``: true with the reason while the last retry request was refused."""
        refused = isinstance(event, ev.RetryRefused)
        self._conditions = conditions.upsert(
            self._conditions,
            type="LeverRefused",
            status=refused,
            reason="RetryRefused" if refused else "RetryAccepted",
            message=_describe(event),
            generation=self._generation(),
            now=self._clock(),
        )
        self._dirty.set()

    def database(self, *, available: bool, message: str) -> None:
        """Show on the saga whether its progress is paused for the database."""
        self._conditions = conditions.upsert(
            self._conditions,
            type="DatabaseAvailable",
            status=available,
            reason="Reachable" if available else "Unreachable",
            message=message,
            generation=self._generation(),
            now=self._clock(),
        )
        if available != self._database_ok:
            self._database_ok = available
            self._post(
                "DatabaseAvailable" if available else "DatabaseUnavailable",
                message,
                warning=not available,
            )
        self._dirty.set()

    def _count_phase(self, current: state.SagaState | None) -> None:
        """Move this saga in ``sagaz_sagas_in_flight`` to its phase (out of it when finished
        or closed): one process counts each saga it executes once, in one phase."""
        phase = None if current is None or current.finished else current.phase
        if phase is not None and current is not None and current.started_at is not None:
            metrics.running_since[id(self)] = current.started_at.timestamp()
        else:
            metrics.running_since.pop(id(self), None)
        if phase is self._in_flight:
            return
        if self._in_flight is not None:
            metrics.sagas_in_flight.labels(self._label, self._in_flight.value).dec()
        if phase is not None:
            metrics.sagas_in_flight.labels(self._label, phase.value).inc()
        self._in_flight = phase

    def publish(self, current: state.SagaState) -> None:
        self._count_phase(current)
        self._latest = current
        self._dirty.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(
                self._flush_forever(), name=f"status {self._ref.name}"
            )

    async def close(self) -> None:
        """Write the last state and give pending Events ``EVENTS_GRACE_SECONDS`` (they go on
        after that, each bounded by the client's timeout). A finished saga's final status and
        terminal Event go to the status outbox, which retries them after this returns."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        self._count_phase(None)
        if self._latest is not None and self._latest.finished:
            status = self._status()
            self._outbox.submit(
                self._ref, status=None if status == self._written else status, notice=self._terminal
            )
            self._terminal = None
        else:
            await self._write()
        if self._posts:
            await asyncio.wait(self._posts, timeout=EVENTS_GRACE_SECONDS)
            _STRAGGLERS.update(self._posts)  # kept alive until done, past this reporter

    # -- status ------------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        if self._budget is not None:
            self._budget.enter()
        try:
            await self._dirty.wait()
            # A saga done by then is written once, by close.
            await self._sleep(self._pause())
            failures = 0
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                interval = self._pause()
                if await self._write():
                    failures = 0
                    await self._sleep(interval)
                    continue
                failures += 1
                self._dirty.set()  # try again, even if nothing new is published meanwhile
                delay = backoff.delay_seconds(
                    STATUS_BACKOFF, attempt=failures, jitter=self._jitter()
                )
                await self._sleep(max(interval, delay))
        finally:
            if self._budget is not None:
                self._budget.leave()

    def _pause(self) -> float:
        """The interval, stretched while the process's status writes are over budget."""
        if self._budget is None:
            return self._interval
        return max(self._interval, self._budget.spacing())

    def _status(self) -> dict[str, Json]:
        assert self._latest is not None
        name, generation = self._definition
        status = projection.status(
            self._latest,
            now=self._clock(),
            definition_name=name,
            definition_generation=generation,
        )
        status["observedGeneration"] = self._generation()
        if self._conditions:
            status["conditions"] = list(self._conditions)
        return status

    async def _write(self) -> bool:
        """Write the latest status if it changed; False if it should be tried again."""
        if self._latest is None:
            return True
        status = self._status()
        if status == self._written:
            return True
        try:
            await self._kube.patch_status(self._ref, status)
        except SagazError as error:
            logger.warning("saga %s: status not written: %s", self._ref.name, error)
            return not error.retryable  # a refused status is not repeated until the next change
        self._written = status
        return True

    # -- Events ------------------------------------------------------------------------------

    def _post(self, reason: str, message: str, *, warning: bool, action: str = "Journal") -> None:
        task = asyncio.create_task(
            self._kube.post_event(
                self._ref, reason=reason, message=message, warning=warning, action=action
            )
        )
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)
        task.add_done_callback(_STRAGGLERS.discard)


def _worth_an_event(event: ev.Event) -> bool:
    """A failed attempt that cannot be retried is told by what follows it (compensation, or
    the end), not by an Event of its own."""
    return not isinstance(event, ev.StepFailed) or event.retryable


def _describe(event: ev.Event, current: state.SagaState | None = None) -> str:
    match event:
        case ev.SagaStarted():
            return "saga started"
        case ev.StepSucceeded(step=step, attempt=attempt):
            return f"step {step} succeeded (attempt {attempt})"
        case ev.StepFailed(step=step, attempt=attempt, error=error, retryable=retryable):
            again = "; will retry if attempts remain" if retryable else ""
            return f"step {step} attempt {attempt} failed: {error}{again}"
        case ev.CompensationStarted():
            failure = current.failure if current is not None else None
            why = f": {failure.message}" if failure is not None else ""
            return f"compensating the steps that ran{why}"
        case ev.CompensationFailed(step=step, attempt=attempt, error=error):
            return f"compensation of step {step} attempt {attempt} failed: {error}"
        case ev.RetryRequested(request=request):
            return f"retry {request} accepted: trying again what failed, with a fresh budget"
        case ev.RetryRefused(request=request, message=message):
            return f"retry {request} refused: {message}"
        case ev.SagaRejected(message=message) | ev.SagaFinished(message=message):
            return message
    return type(event).__name__


def _count(event: ev.Event, current: state.SagaState, definition: str) -> None:
    match event:
        case ev.SagaStarted():
            metrics.sagas_started.labels(definition).inc()
        case ev.StepSucceeded(step=step):
            metrics.step_attempts.labels("succeeded", definition).inc()
            started = current.steps[step].started_at
            if started is not None:
                metrics.step_duration.labels(definition).observe(
                    (event.at - started).total_seconds()
                )
        case ev.StepFailed():
            metrics.step_attempts.labels("failed", definition).inc()
        case ev.CompensationSucceeded():
            metrics.compensations.labels("succeeded", definition).inc()
        case ev.CompensationFailed():
            metrics.compensations.labels("failed", definition).inc()
        case ev.SagaRejected():
            metrics.sagas_finished.labels(ev.Outcome.FAILED.value, definition).inc()
        case ev.SagaFinished(outcome=outcome):
            metrics.sagas_finished.labels(outcome.value, definition).inc()
            if current.started_at is not None:
                metrics.saga_duration.labels(outcome.value, definition).observe(
                    (event.at - current.started_at).total_seconds()
                )
