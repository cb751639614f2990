"""The saga executor: carries out the engine's decisions, one saga at a time.

Its loop is the whole protocol of DESIGN.md §4.2:

    decide -> journal the events (with their outbox rows, one transaction) -> fold them into
    the state -> act on them (start an attempt, cancel one) -> wait for an outcome, a timer
    or a user's change -> journal the outcome -> decide ...

Nothing is acted on before it is journaled ("write-ahead dispatch"), so after a crash the
journal says exactly which attempts were in flight; ``run`` starts them again first, with
the same idempotency key (it does not depend on the attempt number).

What the participants answer is made storable before it is journaled (``domain.storable``):
an error message is cleaned and cut, an output the journal cannot hold fails the step (it
took effect, so it is compensated), a huge one is replaced by a marker.

When the database is away, the executor keeps its place: it retries the same append with
backoff (in-flight calls go on; their outcomes wait) and reports ``DatabaseAvailable=False``.
If its fence is gone (the advisory lock was lost, or another writer appended first), it
stops at once with ``FencedError``: whoever holds the saga now goes on from the journal.

Every attempt runs in a span of the saga's trace, and the saga's span is handed to the tracer
when the journal says the saga finished (``services.tracing`` says why then, not at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sagaz_operator.domain import engine, levers, state, storable
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Purpose, StepName
from sagaz_operator.errors import (
    ParticipantError,
    RetryableParticipantError,
    StoreConflictError,
    StoreUnavailableError,
    TemplateError,
)
from sagaz_operator.services import tracing
from sagaz_operator.services.steps import SagaContext, StepRunner

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Journal(Protocol):
    async def append(self, events: Sequence[ev.Event], *, after: state.SagaState) -> None: ...


class Fence(Protocol):
    async def ensure(self) -> bool:
        """True while this process may write the saga (taking its lock again if needed)."""
        ...


class Observer(Protocol):
    """Told of every journaled event and state (status projection, Events, metrics)."""

    def observe(self, event: ev.Event, current: state.SagaState) -> None: ...

    def publish(self, current: state.SagaState) -> None: ...

    def database(self, *, available: bool, message: str) -> None: ...


class FencedError(Exception):
    """Another executor may own this saga now: stop without writing anything more."""


class _StopRequestedError(Exception):
    """The operator is stopping (or the object went away) while waiting for the database."""


#: How long a saga handed to another replica waits for its attempts in flight, so that the new
#: owner finds their outcomes journaled instead of sending them again (then they are cut off
#: and re-sent under the same key, as after any stop).
DRAIN_SECONDS = 10.0

#: Backoff while the database is unavailable, in seconds.
DATABASE_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class Controls:
    """The user's levers (``spec.suspend``, ``spec.abort``, ``spec.retry``), as last seen."""

    suspend: bool = False
    abort: bool = False
    retry: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    parked: bool = False  # the saga has finished: its daemon waits (for spec.retry, its TTL)
    drain: bool = False  # handed to another replica: journal the attempts in flight first

    def update(self, *, suspend: bool, abort: bool, retry: int = 0) -> None:
        if (suspend, abort, retry) != (self.suspend, self.abort, self.retry):
            self.suspend, self.abort, self.retry = suspend, abort, retry
            self.changed.set()


async def wait_stopped(stopped: Stopped, seconds: float) -> bool:
    """Wait ``seconds``, or less if ``stopped`` is set meanwhile; whether it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.ensure_future(stopped.wait()), timeout=seconds)
    return stopped.is_set()


class Stopped(Protocol):
    """The saga's stop flag (``services/intake.py``): set when the operator exits or the
    object goes away."""

    def is_set(self) -> bool: ...

    def wait(self) -> Awaitable[object]: ...


_CallKey = tuple[StepName, Purpose]


class Executor:
    def __init__(
        self,
        *,
        saga: SagaContext,
        current: state.SagaState,
        journal: Journal,
        runner: StepRunner,
        observer: Observer,
        controls: Controls,
        clock: Clock,
        fence: Fence,
        tracer: tracing.Tracer = tracing.NO_TRACING,
    ) -> None:
        self._saga = saga
        self._tracer = tracer
        self._fence = fence
        self._stopped: Stopped | None = None
        self.state = current
        self._journal = journal
        self._runner = runner
        self._observer = observer
        self._controls = controls
        self._clock = clock
        self._calls: dict[_CallKey, asyncio.Task[ev.Event]] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        self._cut_because: dict[tuple[StepName, Purpose, int], ev.Event] = {}

    async def run(self, stopped: Stopped) -> state.SagaState:
        """Drive the saga until it finishes or ``stopped`` is set; returns the last state.

        Raises ``FencedError`` when the saga's lock was lost.
        """
        self._stopped = stopped
        self._resume_in_flight()
        try:
            while not stopped.is_set():
                await self._sync_controls()
                decision = engine.decide(self.state, self._clock())
                if decision.events:
                    await self._record(decision.events)
                    continue
                self._observer.publish(self.state)
                if self.state.finished:
                    break
                await self._wait(decision.wake_at, stopped)
            if self._controls.drain:
                await self._drain()
            return self.state
        except _StopRequestedError:
            return self.state
        finally:
            await self._cancel_all()

    # -- recording ---------------------------------------------------------------------------

    async def _record(self, events: Sequence[ev.Event]) -> None:
        folded = list(itertools.accumulate(events, state.evolve, initial=self.state))[1:]
        await self._append(events, after=folded[-1])
        for event, after in zip(events, folded, strict=True):
            self.state = after
            self._observer.observe(event, self.state)
            if isinstance(event, ev.SagaFinished):
                self._tracer.saga_finished(
                    saga_name=self._saga.name, namespace=self._saga.namespace, state=self.state
                )
            self._act(event)

    async def _append(self, events: Sequence[ev.Event], *, after: state.SagaState) -> None:
        """Journal ``events``, waiting out database outages; only a lost fence stops it."""
        failures = 0
        while True:
            try:
                if not await self._fence.ensure():
                    raise FencedError(f"saga {self._saga.uid}: another operator holds its lock")
                await self._journal.append(events, after=after)
            except StoreConflictError as error:
                raise FencedError(str(error)) from error
            except StoreUnavailableError as error:
                self._observer.database(available=False, message=f"database unavailable: {error}")
                delay = DATABASE_BACKOFF[min(failures, len(DATABASE_BACKOFF) - 1)]
                failures += 1
                logger.warning(
                    "saga %s: database unavailable (%s); retrying in %gs",
                    self._saga.name,
                    error,
                    delay,
                )
                await self._pause(delay)
                continue
            if failures:
                self._observer.database(available=True, message="database reachable again")
            return

    async def _pause(self, seconds: float) -> None:
        assert self._stopped is not None
        if await wait_stopped(self._stopped, seconds):
            raise _StopRequestedError

    def _act(self, event: ev.Event) -> None:
        match event:
            case ev.StepDispatched(step=name, attempt=attempt):
                self._start(name, "action", attempt)
            case ev.CompensationDispatched(step=name, attempt=attempt):
                self._start(name, "compensation", attempt)
            case (
                ev.StepCancelled(step=name, attempt=attempt)
                | ev.StepFailed(step=name, attempt=attempt)
            ):
                self._cut_off(name, "action", attempt, because=event)
            case ev.CompensationFailed(step=name, attempt=attempt):
                self._cut_off(name, "compensation", attempt, because=event)

    async def _sync_controls(self) -> None:
        # Cleared before the levers are read: a change that lands while this records the
        # previous one sets the flag again, and the next wait returns at once for it.
        self._controls.changed.clear()
        wanted: list[ev.Event] = []
        now = self._clock()
        if self._controls.suspend != self.state.suspended and not self.state.finished:
            wanted.append(ev.SuspendChanged(at=now, suspended=self._controls.suspend))
        if self._controls.abort and not self.state.abort_requested and not self.state.finished:
            wanted.append(ev.AbortRequested(at=now))
        if self._controls.retry > self.state.retry_seen:
            wanted.append(levers.retry(self.state, request=self._controls.retry, at=now))
        if wanted:
            await self._record(wanted)

    # -- calls -------------------------------------------------------------------------------

    def _resume_in_flight(self) -> None:
        for name, step in self.state.steps.items():
            if step.action.in_flight_since is not None:
                logger.info(
                    "saga %s: resuming step %s attempt %d after a restart",
                    self._saga.name,
                    name,
                    step.action.count,
                )
                self._start(name, "action", step.action.count, resumed=True)
            if step.compensation.in_flight_since is not None:
                self._start(name, "compensation", step.compensation.count, resumed=True)

    def _start(
        self, name: StepName, purpose: Purpose, attempt: int, *, resumed: bool = False
    ) -> None:
        self._calls[(name, purpose)] = asyncio.create_task(
            self._traced(name, purpose, attempt, resumed=resumed),
            name=f"saga {self._saga.uid} {name} {purpose}",
        )

    def _cut_off(
        self, name: StepName, purpose: Purpose, attempt: int, *, because: ev.Event
    ) -> None:
        """Stop waiting for an attempt the engine gave up on, and clean up after it."""
        task = self._calls.pop((name, purpose), None)
        if task is None or task.done():
            return
        self._cut_because[(name, purpose, attempt)] = because  # its span's outcome
        task.cancel()
        cleanup = asyncio.create_task(
            self._runner.stop(
                saga=self._saga, state=self.state, step=name, purpose=purpose, attempt=attempt
            )
        )
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)

    async def _drain(self) -> None:
        """Journal the outcomes of the attempts in flight that end within ``DRAIN_SECONDS``."""
        if not self._calls:
            return
        await asyncio.wait(list(self._calls.values()), timeout=DRAIN_SECONDS)
        for key, task in list(self._calls.items()):
            if task.done():
                del self._calls[key]
                await self._record([task.result()])

    async def _cancel_all(self) -> None:
        """Stop waiting (the operator stops): the attempts' Jobs live on, to be adopted."""
        tasks = list(self._calls.values())
        self._calls.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._cleanups, return_exceptions=True)

    async def _traced(
        self, name: StepName, purpose: Purpose, attempt: int, *, resumed: bool
    ) -> ev.Event:
        """One attempt in its span (``services.tracing``), which ends with the attempt's outcome,
        the engine's verdict when it cut the attempt off, or none when the operator stops."""
        span = self._tracer.attempt(
            self._saga.attempt(step=name, purpose=purpose, number=attempt),
            round=self.state.round,
            resumed=resumed,
        )
        outcome: ev.Event | None = None
        try:
            outcome = await self._call(name, purpose, attempt, traceparent=span.traceparent)
            return outcome
        except asyncio.CancelledError:  # the engine's verdict (a timeout, FailFast), or a stop
            outcome = self._cut_because.get((name, purpose, attempt))
            raise
        finally:
            self._cut_because.pop((name, purpose, attempt), None)
            span.end(outcome)

    async def _call(
        self, name: StepName, purpose: Purpose, attempt: int, *, traceparent: str
    ) -> ev.Event:
        """One attempt, always ending in an outcome event (never an exception)."""
        try:
            output = await self._runner.run(
                saga=self._saga,
                state=self.state,
                step=name,
                purpose=purpose,
                attempt=attempt,
                traceparent=traceparent,
            )
        except (ParticipantError, TemplateError) as error:
            return _failure(name, purpose, attempt, self._clock(), error)
        except Exception as error:  # a bug must not kill the saga: fail the attempt, retryably
            logger.exception(
                "saga %s step %s %s attempt %d crashed", self._saga.name, name, purpose, attempt
            )
            unexpected = RetryableParticipantError(f"internal error: {type(error).__name__}")
            return _failure(name, purpose, attempt, self._clock(), unexpected)
        if purpose == "action":
            # An answer the journal cannot hold is a failed step that took effect, not a crash.
            return storable.step_outcome(
                at=self._clock(), step=name, attempt=attempt, output=output
            )
        return ev.CompensationSucceeded(at=self._clock(), step=name, attempt=attempt)

    async def _wait(self, wake_at: datetime | None, stopped: Stopped) -> None:
        """Sleep until an attempt ends, the user changes something, ``wake_at``, or a stop."""
        waiters: list[asyncio.Future[Any]] = [
            *self._calls.values(),
            asyncio.ensure_future(self._controls.changed.wait()),
            asyncio.ensure_future(stopped.wait()),
        ]
        timeout = None
        if wake_at is not None:
            timeout = max(0.0, (wake_at - self._clock()).total_seconds())
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for helper in waiters[-2:]:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
        for key, task in list(self._calls.items()):
            if task.done():
                del self._calls[key]
                await self._record([task.result()])


def _failure(
    name: StepName, purpose: Purpose, attempt: int, at: datetime, error: Exception
) -> ev.Event:
    retryable = isinstance(error, ParticipantError) and error.retryable
    retry_after = error.retry_after_seconds if isinstance(error, ParticipantError) else None
    message = storable.text(str(error))  # a participant's words, made storable and bounded
    if purpose == "compensation":
        return ev.CompensationFailed(
            at=at,
            step=name,
            attempt=attempt,
            error=message,
            retryable=retryable,
            retry_after_seconds=retry_after,
        )
    return ev.StepFailed(
        at=at,
        step=name,
        attempt=attempt,
        error=message,
        retryable=retryable,
        outcome_unknown=isinstance(error, ParticipantError) and error.outcome_unknown,
        retry_after_seconds=retry_after,
    )
