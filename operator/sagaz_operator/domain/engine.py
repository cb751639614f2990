"""What to do next: ``decide(state, now) -> Decision``.

The engine is a pure function of the saga's state and the time. It returns the events that
record its decisions (dispatch this step, cancel that one, start compensating, finish) and the
time it next needs to look again. The executor journals the events, folds them into the state
(``state.evolve``), performs what they ask for, and calls ``decide`` again until it returns no
events. Every call sees a consistent state, so each rule below can be read on its own:

1. a finished saga does nothing; a saga not yet started starts;
2. attempts past their per-attempt timeout fail (retryable, outcome unknown);
3. going forward: abort, the saga deadline or a failed step stop it (``SagaFailing``);
   otherwise runnable steps and due retries are dispatched, or the saga succeeds;
4. failing: the failure strategy decides when in-flight steps are cancelled, and once none is
   left, compensation starts (or, after a Pivot, the saga fails: it cannot go back);
5. compensating: every step that succeeded or may have taken effect is compensated, each only
   after the compensations of all its dependents, independent branches in parallel.

Retry jitter is derived from a hash of (saga uid, step, attempt) rather than drawn at random:
it still spreads retries of different sagas apart, and a replayed journal waits exactly as
long as the original run would have.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sagaz_operator.api.saga import StepPhase
from sagaz_operator.domain import backoff, dag
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import FailureStrategy, RetryPolicy, StepKind, StepName
from sagaz_operator.domain.state import SagaState, StepState, Tries

#: Maps a stable key to a number in [0, 1).
Jitter = Callable[[str], float]


def hashed_jitter(key: str) -> float:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, kw_only=True)
class Decision:
    events: tuple[ev.Event, ...] = ()
    wake_at: datetime | None = None  # look again then, even if nothing else happens


def decide(state: SagaState, now: datetime, *, jitter: Jitter = hashed_jitter) -> Decision:
    if state.finished:
        return Decision()
    if state.started_at is None:
        return Decision(events=(ev.SagaStarted(at=now),))
    timed_out = tuple(_timeouts(state, now))
    if timed_out:
        return Decision(events=timed_out)
    planner = _Planner(state=state, now=now, jitter=jitter, graph=state.definition.graph)
    if state.failure is None:
        return planner.forward()
    if not state.compensating:
        return planner.failing()
    return planner.compensate()


def _timeouts(state: SagaState, now: datetime) -> Iterable[ev.Event]:
    for step in state.definition.steps:
        current = state.steps[step.name]
        limit = timedelta(seconds=step.timeout_seconds)
        started = current.action.in_flight_since
        if started is not None and now >= started + limit:
            yield ev.StepFailed(
                at=now,
                step=step.name,
                attempt=current.action.count,
                error=f"attempt {current.action.count} timed out after {step.timeout_seconds:g}s",
                retryable=True,
                outcome_unknown=True,
            )
        started = current.compensation.in_flight_since
        if started is not None and now >= started + limit:
            yield ev.CompensationFailed(
                at=now,
                step=step.name,
                attempt=current.compensation.count,
                error=f"attempt {current.compensation.count} timed out "
                f"after {step.timeout_seconds:g}s",
                retryable=True,
            )


@dataclass(frozen=True, kw_only=True)
class _Planner:
    state: SagaState
    now: datetime
    jitter: Jitter
    graph: dag.Graph

    # -- rule 3: going forward ---------------------------------------------------------------

    def forward(self) -> Decision:
        state, now = self.state, self.now
        assert state.deadline is not None
        if state.abort_requested:
            return self._stop(ev.FailureReason.ABORTED, "aborted: spec.abort is true")
        if now >= state.deadline:
            seconds = state.definition.timeout_seconds
            return self._stop(
                ev.FailureReason.DEADLINE_EXCEEDED, f"saga deadline of {seconds:g}s exceeded"
            )
        for name, step in state.steps.items():
            if step.phase is StepPhase.FAILED:
                return self._stop(ev.FailureReason.STEP_FAILED, f"step '{name}' {step.error}")
        if all(step.phase is StepPhase.SUCCEEDED for step in state.steps.values()):
            count = len(state.steps)
            return Decision(
                events=(
                    ev.SagaFinished(
                        at=now, outcome=ev.Outcome.SUCCEEDED, message=f"all {count} steps succeeded"
                    ),
                )
            )
        dispatches = [] if state.suspended else [*self._new_steps(), *self._due_retries()]
        return Decision(events=tuple(dispatches), wake_at=self._next_wake(state.deadline))

    def _stop(self, reason: ev.FailureReason, message: str) -> Decision:
        if self.state.pivot_succeeded:
            # Past the point of no return nothing is compensated: stop what runs, then fail.
            cancels = self._cancel_active()
            if cancels:
                return Decision(events=cancels)
            note = "; the Pivot step succeeded, so completed steps are not compensated"
            return Decision(
                events=(
                    ev.SagaFinished(at=self.now, outcome=ev.Outcome.FAILED, message=message + note),
                )
            )
        return Decision(events=(ev.SagaFailing(at=self.now, reason=reason, message=message),))

    def _new_steps(self) -> Iterable[ev.Event]:
        steps = self.state.steps
        succeeded = {name for name, s in steps.items() if s.phase is StepPhase.SUCCEEDED}
        started = {name for name, s in steps.items() if s.phase is not StepPhase.PENDING}
        for name in dag.runnable(self.graph, succeeded=succeeded, started=started):
            yield ev.StepDispatched(at=self.now, step=name, attempt=1)

    def _due_retries(self) -> Iterable[ev.Event]:
        for name, step in self.state.steps.items():
            if step.waiting_to_retry and self._retry_due(name, step.action) <= self.now:
                yield ev.StepDispatched(at=self.now, step=name, attempt=step.action.count + 1)

    # -- rule 4: failing ---------------------------------------------------------------------

    def failing(self) -> Decision:
        state, now = self.state, self.now
        failure = state.failure
        assert failure is not None
        assert state.deadline is not None
        if any(step.active for step in state.steps.values()):
            grace_end = failure.at + timedelta(seconds=state.definition.grace_period_seconds)
            if self._cancel_now(grace_end):
                return Decision(events=self._cancel_active())
            # WaitAll / grace period: in-flight steps finish, waiting ones keep retrying.
            retries = () if state.suspended else tuple(self._due_retries())
            wake = self._next_wake(state.deadline)
            if state.definition.failure_strategy is FailureStrategy.FAIL_FAST_WITH_GRACE:
                wake = min(wake, grace_end) if wake else grace_end
            return Decision(events=retries, wake_at=wake)
        if state.pivot_succeeded:
            return self._stop(failure.reason, failure.message)
        return Decision(events=(ev.CompensationStarted(at=now),))

    def _cancel_now(self, grace_end: datetime) -> bool:
        state, now = self.state, self.now
        assert state.failure is not None
        assert state.deadline is not None
        if state.failure.reason is not ev.FailureReason.STEP_FAILED or state.abort_requested:
            return True
        if now >= state.deadline:
            return True
        strategy = state.definition.failure_strategy
        if strategy is FailureStrategy.FAIL_FAST:
            return True
        return strategy is FailureStrategy.FAIL_FAST_WITH_GRACE and now >= grace_end

    def _cancel_active(self) -> tuple[ev.Event, ...]:
        return tuple(
            ev.StepCancelled(at=self.now, step=name, attempt=step.action.count)
            for name, step in self.state.steps.items()
            if step.active
        )

    # -- rule 5: compensating ----------------------------------------------------------------

    def compensate(self) -> Decision:
        state = self.state
        pending = [name for name in self._to_compensate() if not _settled(state.steps[name])]
        in_flight = [n for n in pending if state.steps[n].compensation.in_flight_since is not None]
        ready = [n for n in pending if n not in in_flight and self._dependents_done(n)]
        if not in_flight and not ready:
            return Decision(events=(self._compensation_outcome(),))
        if state.suspended:
            return Decision()
        policy = state.definition.compensation_retry
        dispatches: list[ev.Event] = []
        wake: datetime | None = None
        for name in ready:
            tries = state.steps[name].compensation
            due = self._retry_due(name, tries, policy=policy, purpose="compensation")
            if due <= self.now:
                dispatches.append(
                    ev.CompensationDispatched(at=self.now, step=name, attempt=tries.count + 1)
                )
            else:
                wake = min(wake, due) if wake else due
        for name in in_flight:
            end = self._attempt_end(name, state.steps[name].compensation)
            wake = min(wake, end) if wake else end
        return Decision(events=tuple(dispatches), wake_at=wake)

    def _to_compensate(self) -> list[StepName]:
        """Steps that succeeded or may have taken effect, and have a compensation to run."""
        return [
            step.name
            for step in self.state.definition.steps
            if step.compensation is not None
            and step.kind is not StepKind.RETRIABLE
            and (self.state.steps[step.name].applied or self.state.steps[step.name].maybe_applied)
        ]

    def _dependents_done(self, name: StepName) -> bool:
        """True when every compensation among the step's dependents has succeeded.

        A dependent whose compensation failed blocks the step for good: undoing it now could
        break an invariant the dependent still relies on, so a human decides.
        """
        targets = set(self._to_compensate())
        return all(
            self.state.steps[d].phase is StepPhase.COMPENSATED
            for d in self.graph.descendants(name)
            if d in targets
        )

    def _compensation_outcome(self) -> ev.SagaFinished:
        state = self.state
        assert state.failure is not None
        targets = self._to_compensate()
        failed = [n for n in targets if state.steps[n].phase is StepPhase.COMPENSATION_FAILED]
        undone = [n for n in targets if state.steps[n].phase is StepPhase.COMPENSATED]
        if failed:
            blocked = [n for n in targets if not _settled(state.steps[n])]
            message = f"{state.failure.message}; compensation of " + ", ".join(
                f"'{n}' {state.steps[n].error}" for n in failed
            )
            if blocked:
                message += "; not compensated: " + ", ".join(blocked)
            return ev.SagaFinished(
                at=self.now, outcome=ev.Outcome.COMPENSATION_FAILED, message=message
            )
        message = f"{state.failure.message}; compensated {len(undone)} step(s)"
        without = self._applied_without_compensation()
        if without:
            message += "; no compensation defined for " + ", ".join(without)
        return ev.SagaFinished(at=self.now, outcome=ev.Outcome.COMPENSATED, message=message)

    def _applied_without_compensation(self) -> list[StepName]:
        return [
            step.name
            for step in self.state.definition.steps
            if step.compensation is None
            and (self.state.steps[step.name].applied or self.state.steps[step.name].maybe_applied)
        ]

    # -- timing --------------------------------------------------------------------------------

    def _retry_due(
        self,
        name: StepName,
        tries: Tries,
        *,
        policy: RetryPolicy | None = None,
        purpose: str = "action",
    ) -> datetime:
        if tries.last_failure_at is None:
            return self.now  # never tried: due at once
        policy = policy or self.state.definition.step(name).retry
        delay = backoff.next_delay_seconds(
            policy.backoff,
            attempt=tries.budgeted,
            jitter=self.jitter(f"{self.state.uid}/{name}/{purpose}/{tries.count}"),
            retry_after_seconds=tries.retry_after_seconds,
        )
        return tries.last_failure_at + timedelta(seconds=delay)

    def _attempt_end(self, name: StepName, tries: Tries) -> datetime:
        assert tries.in_flight_since is not None
        return tries.in_flight_since + timedelta(
            seconds=self.state.definition.step(name).timeout_seconds
        )

    def _next_wake(self, deadline: datetime) -> datetime:
        times = [deadline]
        for name, step in self.state.steps.items():
            if step.waiting_to_retry:
                times.append(self._retry_due(name, step.action))
            elif step.action.in_flight_since is not None:
                times.append(self._attempt_end(name, step.action))
        return min(times)


def _settled(step: StepState) -> bool:
    return step.phase in (StepPhase.COMPENSATED, StepPhase.COMPENSATION_FAILED)
