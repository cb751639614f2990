"""A deterministic, instant stand-in for the executor, to test the pure engine.

It drives ``engine.decide`` and ``state.evolve`` exactly as the real executor does, with a
simulated clock and scripted participant outcomes: every call takes ``duration`` seconds and
ends as its script says. Nothing here touches a network or a real clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sagaz_operator.domain import engine, state
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import (
    Backoff,
    Definition,
    FailureStrategy,
    HttpCall,
    Json,
    RetryPolicy,
    SagaUid,
    Step,
    StepKind,
    StepName,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Ok:
    output: Json = None
    duration: float = 1.0


@dataclass(frozen=True)
class Fail:
    retryable: bool = False
    outcome_unknown: bool = False
    retry_after: float | None = None
    duration: float = 1.0
    error: str = "boom"


@dataclass(frozen=True)
class Hang:
    """Never answers: only a timeout or a cancellation ends the attempt."""


Outcome = Ok | Fail | Hang


@dataclass
class Script:
    """Outcomes per step, attempt by attempt; the last one repeats. Default: Ok()."""

    actions: Mapping[str, Sequence[Outcome]] = field(default_factory=dict)
    compensations: Mapping[str, Sequence[Outcome]] = field(default_factory=dict)
    #: (time offset in seconds, event factory) pairs injected by a "user" (suspend, abort).
    interventions: Sequence[tuple[float, Callable[[datetime], ev.Event]]] = ()

    def outcome(self, step: str, attempt: int, *, compensation: bool) -> Outcome:
        outcomes = (self.compensations if compensation else self.actions).get(step, [Ok()])
        return outcomes[min(attempt, len(outcomes)) - 1]


@dataclass
class Run:
    state: state.SagaState
    journal: list[ev.Event]

    def of(self, kind: type[ev.Event]) -> list[ev.Event]:
        return [e for e in self.journal if isinstance(e, kind)]

    def steps_of(self, kind: type[ev.Event]) -> list[str]:
        return [getattr(e, "step") for e in self.of(kind)]  # noqa: B009 - all have .step

    def time_of(self, kind: type[ev.Event], step: str) -> datetime:
        return next(e.at for e in self.of(kind) if getattr(e, "step", None) == step)


def simulate(
    definition: Definition,
    script: Script | None = None,
    *,
    limit: int = 10_000,
    after: Run | None = None,
    then: Callable[[state.SagaState, datetime], ev.Event] | None = None,
) -> Run:
    """Run the saga to its end; or go on ``after`` an earlier run (which ended), first
    recording the event ``then`` makes of its state, one second after its last event."""
    script = script or Script()
    current = state.initial(uid=SagaUid("uid-1"), definition=definition)
    journal: list[ev.Event] = []
    calls: dict[tuple[str, bool], tuple[datetime, ev.Event]] = {}
    interventions = sorted(script.interventions, key=lambda item: item[0])
    now = T0
    if after is not None:
        current, journal = after.state, list(after.journal)
        now = journal[-1].at + timedelta(seconds=1)

    def apply(event: ev.Event) -> None:
        nonlocal current
        journal.append(event)
        current = state.evolve(current, event)
        match event:
            case ev.StepDispatched(step=name, attempt=attempt):
                _schedule(calls, script, name, attempt, compensation=False, now=event.at)
            case ev.CompensationDispatched(step=name, attempt=attempt):
                _schedule(calls, script, name, attempt, compensation=True, now=event.at)
            case ev.StepCancelled(step=name) | ev.StepFailed(step=name):
                calls.pop((name, False), None)
            case ev.CompensationFailed(step=name):
                calls.pop((name, True), None)

    if then is not None:
        apply(then(current, now))
    for _ in range(limit):
        decision = engine.decide(current, now)
        if decision.events:
            for event in decision.events:
                apply(event)
            continue
        if current.finished:
            return Run(state=current, journal=journal)
        times = [at for at, _ in calls.values()]
        times += [T0 + timedelta(seconds=offset) for offset, _ in interventions]
        if decision.wake_at is not None:
            times.append(decision.wake_at)
        assert times, f"stuck: nothing in flight and nothing to wait for at {now}"
        now = max(now, min(times))
        while interventions and T0 + timedelta(seconds=interventions[0][0]) <= now:
            apply(interventions.pop(0)[1](now))
        for key, (at, outcome_event) in sorted(calls.items(), key=lambda item: item[1][0]):
            if at <= now and key in calls:
                del calls[key]
                apply(outcome_event)
    raise AssertionError(f"no outcome after {limit} decisions")


def _schedule(
    calls: dict[tuple[str, bool], tuple[datetime, ev.Event]],
    script: Script,
    name: StepName,
    attempt: int,
    *,
    compensation: bool,
    now: datetime,
) -> None:
    outcome = script.outcome(name, attempt, compensation=compensation)
    if isinstance(outcome, Hang):
        return
    at = now + timedelta(seconds=outcome.duration)
    event: ev.Event
    if isinstance(outcome, Ok):
        event = (
            ev.CompensationSucceeded(at=at, step=name, attempt=attempt)
            if compensation
            else ev.StepSucceeded(at=at, step=name, attempt=attempt, output=outcome.output)
        )
    elif compensation:
        event = ev.CompensationFailed(
            at=at,
            step=name,
            attempt=attempt,
            error=outcome.error,
            retryable=outcome.retryable,
            retry_after_seconds=outcome.retry_after,
        )
    else:
        event = ev.StepFailed(
            at=at,
            step=name,
            attempt=attempt,
            error=outcome.error,
            retryable=outcome.retryable,
            outcome_unknown=outcome.outcome_unknown,
            retry_after_seconds=outcome.retry_after,
        )
    calls[(name, compensation)] = (at, event)


# -- builders ---------------------------------------------------------------------------------


def step(
    name: str,
    *after: str,
    kind: StepKind = StepKind.COMPENSATABLE,
    compensated: bool = True,
    timeout: float = 30,
    attempts: int = 3,
) -> Step:
    return Step(
        name=StepName(name),
        kind=kind,
        depends_on=tuple(StepName(a) for a in after),
        timeout_seconds=timeout,
        retry=RetryPolicy(max_attempts=attempts, backoff=Backoff(initial_seconds=1, factor=2)),
        action=HttpCall(url=f"http://svc/{name}"),
        compensation=HttpCall(url=f"http://svc/{name}/undo") if compensated else None,
    )


def definition(
    *steps: Step,
    strategy: FailureStrategy = FailureStrategy.FAIL_FAST,
    grace: float = 30,
    timeout: float = 600,
    compensation_attempts: int = 3,
) -> Definition:
    return Definition(
        steps=steps,
        failure_strategy=strategy,
        grace_period_seconds=grace,
        timeout_seconds=timeout,
        compensation_retry=RetryPolicy(
            max_attempts=compensation_attempts, backoff=Backoff(initial_seconds=1, factor=2)
        ),
    )
