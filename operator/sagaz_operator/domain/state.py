"""A saga's state: the fold of its journal.

``evolve(state, event)`` is the only way state changes, and it is pure and total, so the
state after a crash is exactly ``reduce(evolve, journal, initial(...))``. The state carries
the definition snapshotted when the saga started: editing or deleting the SagaDefinition
later never changes a running saga, and compensation uses the definition it started with.

``evolve`` records facts and applies the definition's retry policy (does a failed attempt
leave the step waiting for a retry, or failed for good?); everything else — what to start,
cancel or compensate next — is ``engine.decide``'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sagaz_operator.api.saga import SagaPhase, StepPhase
from sagaz_operator.domain import backoff
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Definition, Json, SagaUid, StepKind, StepName

# The phases are the API's (api.saga): what the status shows is exactly what the engine knows.
# A step is RUNNING while an attempt is in flight or it waits for the next one; SKIPPED when
# it never started because the saga failed first.


@dataclass(frozen=True, kw_only=True)
class Tries:
    """The attempts of one call (a step's action, or its compensation)."""

    count: int = 0
    in_flight_since: datetime | None = None  # the current attempt was dispatched then
    last_failure_at: datetime | None = None  # set while waiting for the next attempt
    retry_after_seconds: float | None = None  # what the participant asked for, if anything
    # Attempts before the last RetryRequested: they do not count against the retry budget
    # (attempt numbers go on growing, so Job names and backoff jitter never repeat).
    budget_from: int = 0

    @property
    def budgeted(self) -> int:
        """Attempts made since the budget was last renewed."""
        return self.count - self.budget_from

    def dispatched(self, *, attempt: int, at: datetime) -> Tries:
        return Tries(count=attempt, in_flight_since=at, budget_from=self.budget_from)

    def failed(self, *, at: datetime, retry_after_seconds: float | None) -> Tries:
        return replace(
            self, in_flight_since=None, last_failure_at=at, retry_after_seconds=retry_after_seconds
        )

    def settled(self) -> Tries:
        return Tries(count=self.count, budget_from=self.budget_from)

    def renewed(self) -> Tries:
        """Settled, with a fresh retry budget, and due at once."""
        return Tries(count=self.count, budget_from=self.count)


@dataclass(frozen=True, kw_only=True)
class StepState:
    phase: StepPhase = StepPhase.PENDING
    action: Tries = field(default_factory=Tries)
    compensation: Tries = field(default_factory=Tries)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    output: Json = None
    applied: bool = False  # the action succeeded
    maybe_applied: bool = False  # an attempt's outcome is unknown (timed out, cancelled)

    @property
    def waiting_to_retry(self) -> bool:
        return self.phase is StepPhase.RUNNING and self.action.in_flight_since is None

    @property
    def active(self) -> bool:
        """In flight, or waiting for the next attempt: the step has not reached an outcome."""
        return self.phase is StepPhase.RUNNING


@dataclass(frozen=True, kw_only=True)
class Failure:
    reason: ev.FailureReason
    message: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class SagaState:
    uid: SagaUid
    definition: Definition
    steps: Mapping[StepName, StepState]
    started_at: datetime | None = None
    deadline: datetime | None = None
    finished_at: datetime | None = None
    outcome: ev.Outcome | None = None
    message: str = ""
    failure: Failure | None = None
    compensating: bool = False
    suspended: bool = False
    abort_requested: bool = False
    retry_seen: int = 0  # the highest spec.retry journaled, applied or refused
    # The saga's rounds: the first run, then one per applied retry (a trace's saga spans).
    round: int = 0
    round_started_at: datetime | None = None  # when the current round began, after the first

    @property
    def phase(self) -> SagaPhase:
        if self.outcome is not None:
            return SagaPhase(self.outcome.value)
        if self.started_at is None:
            return SagaPhase.PENDING
        if self.suspended:
            return SagaPhase.SUSPENDED
        if self.failure is not None:
            return SagaPhase.COMPENSATING
        return SagaPhase.RUNNING

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def pivot_succeeded(self) -> bool:
        return any(
            step.kind is StepKind.PIVOT and self.steps[step.name].applied
            for step in self.definition.steps
        )

    def outputs(self) -> dict[str, Json]:
        """Outputs of the steps that succeeded, for templates and default request bodies."""
        return {name: step.output for name, step in self.steps.items() if step.applied}


def initial(*, uid: SagaUid, definition: Definition, suspended: bool = False) -> SagaState:
    return SagaState(
        uid=uid,
        definition=definition,
        steps={step.name: StepState() for step in definition.steps},
        suspended=suspended,
    )


def replay(state: SagaState, journal: list[ev.Event]) -> SagaState:
    for event in journal:
        state = evolve(state, event)
    return state


def evolve(state: SagaState, event: ev.Event) -> SagaState:
    match event:
        case ev.SagaStarted(at=at):
            deadline = at + timedelta(seconds=state.definition.timeout_seconds)
            return replace(state, started_at=at, deadline=deadline)
        case ev.SagaRejected(at=at, message=message):
            return replace(state, outcome=ev.Outcome.FAILED, finished_at=at, message=message)
        case ev.StepDispatched(step=name, attempt=attempt, at=at):
            step = state.steps[name]
            return _with_step(
                state,
                name,
                replace(
                    step,
                    phase=StepPhase.RUNNING,
                    action=step.action.dispatched(attempt=attempt, at=at),
                    started_at=step.started_at or at,
                    error=None,
                ),
            )
        case ev.StepSucceeded(step=name, output=output, at=at):
            step = state.steps[name]
            return _with_step(
                state,
                name,
                replace(
                    step,
                    phase=StepPhase.SUCCEEDED,
                    action=step.action.settled(),
                    finished_at=at,
                    error=None,
                    output=output,
                    applied=True,
                ),
            )
        case ev.StepFailed():
            return _with_step(state, event.step, _step_failed(state, event))
        case ev.StepCancelled(step=name, at=at):
            step = state.steps[name]
            return _with_step(
                state,
                name,
                replace(
                    step,
                    phase=StepPhase.FAILED,
                    action=step.action.settled(),
                    finished_at=at,
                    error=_cancelled_error(step),
                    maybe_applied=step.maybe_applied or step.action.in_flight_since is not None,
                ),
            )
        case ev.SagaFailing(reason=reason, message=message, at=at):
            return replace(state, failure=Failure(reason=reason, message=message, at=at))
        case ev.CompensationStarted():
            skipped = {
                name: replace(step, phase=StepPhase.SKIPPED)
                for name, step in state.steps.items()
                if step.phase is StepPhase.PENDING
            }
            return replace(state, compensating=True, steps={**state.steps, **skipped})
        case ev.CompensationDispatched(step=name, attempt=attempt, at=at):
            step = state.steps[name]
            return _with_step(
                state,
                name,
                replace(
                    step,
                    phase=StepPhase.COMPENSATING,
                    compensation=step.compensation.dispatched(attempt=attempt, at=at),
                ),
            )
        case ev.CompensationSucceeded(step=name, at=at):
            step = state.steps[name]
            return _with_step(
                state,
                name,
                replace(
                    step,
                    phase=StepPhase.COMPENSATED,
                    compensation=step.compensation.settled(),
                    finished_at=at,
                ),
            )
        case ev.CompensationFailed():
            return _with_step(state, event.step, _compensation_failed(state, event))
        case ev.SuspendChanged(suspended=suspended):
            return replace(state, suspended=suspended)
        case ev.AbortRequested():
            return replace(state, abort_requested=True)
        case ev.RetryRefused(request=request):
            return replace(state, retry_seen=request)
        case ev.RetryRequested():
            return _retried(state, event)
        case ev.SagaFinished(outcome=outcome, message=message, at=at):
            return replace(state, outcome=outcome, message=message, finished_at=at)
    raise TypeError(f"not a saga event: {event!r}")  # pragma: no cover - exhaustive match


def _with_step(state: SagaState, name: StepName, step: StepState) -> SagaState:
    return replace(state, steps={**state.steps, name: step})


def _step_failed(state: SagaState, event: ev.StepFailed) -> StepState:
    step = state.steps[event.step]
    spec = state.definition.step(event.step)
    maybe_applied = step.maybe_applied or event.outcome_unknown
    # A Retriable step (after the pivot) must eventually succeed: it retries whatever the
    # error, until the saga deadline. Other steps retry retryable errors while attempts last.
    retry = spec.kind is StepKind.RETRIABLE or (
        event.retryable and backoff.attempts_left(spec.retry, attempts=step.action.budgeted)
    )
    if retry:
        return replace(
            step,
            action=step.action.failed(at=event.at, retry_after_seconds=event.retry_after_seconds),
            error=event.error,
            maybe_applied=maybe_applied,
        )
    return replace(
        step,
        phase=StepPhase.FAILED,
        action=step.action.settled(),
        finished_at=event.at,
        error=_final_error(event.error, attempts=step.action.count, retryable=event.retryable),
        maybe_applied=maybe_applied,
    )


def _compensation_failed(state: SagaState, event: ev.CompensationFailed) -> StepState:
    step = state.steps[event.step]
    policy = state.definition.compensation_retry
    if event.retryable and backoff.attempts_left(policy, attempts=step.compensation.budgeted):
        return replace(
            step,
            compensation=step.compensation.failed(
                at=event.at, retry_after_seconds=event.retry_after_seconds
            ),
            error=f"compensation: {event.error}",
        )
    return replace(
        step,
        phase=StepPhase.COMPENSATION_FAILED,
        compensation=step.compensation.settled(),
        finished_at=event.at,
        error="compensation "
        + _final_error(event.error, attempts=step.compensation.budgeted, retryable=event.retryable),
    )


def _retried(state: SagaState, event: ev.RetryRequested) -> SagaState:
    """The saga goes on where it stopped (``levers.retry`` decided that it may).

    CompensationFailed: the failed compensations are due again with a fresh budget; the saga
    compensates on (steps they blocked follow once they succeed). Failed past the Pivot: the
    Retriable steps that ran out of time are due again, under a new saga deadline.
    """
    steps = dict(state.steps)
    for name, step in state.steps.items():
        if step.phase is StepPhase.COMPENSATION_FAILED:
            steps[name] = replace(
                step,
                phase=StepPhase.COMPENSATING,
                compensation=step.compensation.renewed(),
                finished_at=None,
            )
        elif state.outcome is ev.Outcome.FAILED and step.phase is StepPhase.FAILED:
            steps[name] = replace(
                step, phase=StepPhase.RUNNING, action=step.action.renewed(), finished_at=None
            )
    deadline = state.deadline
    failure = state.failure
    if state.outcome is ev.Outcome.FAILED:
        deadline = event.at + timedelta(seconds=state.definition.timeout_seconds)
        failure = None
    return replace(
        state,
        steps=steps,
        retry_seen=event.request,
        round=state.round + 1,
        round_started_at=event.at,
        outcome=None,
        finished_at=None,
        message="",
        deadline=deadline,
        failure=failure,
    )


def _final_error(error: str, *, attempts: int, retryable: bool) -> str:
    if retryable:
        return f"failed after {attempts} attempts: {error}"
    return f"failed (not retryable): {error}"


def _cancelled_error(step: StepState) -> str:
    if step.action.in_flight_since is not None:
        return "cancelled in flight because the saga is failing; outcome unknown"
    last = f" (last error: {step.error})" if step.error else ""
    return f"cancelled while waiting to retry because the saga is failing{last}"
