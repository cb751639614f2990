"""The journal's vocabulary: everything that can happen to a saga, as immutable facts.

A saga's state is never stored as such: it is the fold of its events (``state.evolve``).
The events are what PostgreSQL journals and what the outbox publishes, so a restarted
operator rebuilds exactly the state it had, and a consumer sees exactly what happened.

Events that record a *decision* (dispatch a step, start compensating, finish) come out of
``engine.decide``; events that record an *outcome* (a participant answered, a user asked to
abort) come from the executor. Both kinds are journaled before anything acts on them:
"step X attempt N dispatched" is committed before the participant is called.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from sagaz_operator.domain.model import Json, StepName


class FailureReason(enum.StrEnum):
    """Why a saga stopped going forward."""

    STEP_FAILED = "StepFailed"
    ABORTED = "Aborted"
    DEADLINE_EXCEEDED = "DeadlineExceeded"


class Outcome(enum.StrEnum):
    """How a saga ended."""

    SUCCEEDED = "Succeeded"
    COMPENSATED = "Compensated"
    COMPENSATION_FAILED = "CompensationFailed"
    FAILED = "Failed"


@dataclass(frozen=True, kw_only=True)
class SagaStarted:
    at: datetime


@dataclass(frozen=True, kw_only=True)
class SagaRejected:
    """The saga could not start: invalid input, missing or invalid definition."""

    at: datetime
    message: str


@dataclass(frozen=True, kw_only=True)
class StepDispatched:
    at: datetime
    step: StepName
    attempt: int


@dataclass(frozen=True, kw_only=True)
class StepSucceeded:
    at: datetime
    step: StepName
    attempt: int
    output: Json = None


@dataclass(frozen=True, kw_only=True)
class StepFailed:
    """An action attempt failed.

    ``outcome_unknown`` marks attempts that may have taken effect anyway (timed out after the
    request was sent); such a step is compensated if the saga fails.
    """

    at: datetime
    step: StepName
    attempt: int
    error: str
    retryable: bool
    outcome_unknown: bool = False
    retry_after_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class StepCancelled:
    """An in-flight or waiting step was stopped because the saga is failing."""

    at: datetime
    step: StepName
    attempt: int


@dataclass(frozen=True, kw_only=True)
class SagaFailing:
    """The saga stops going forward; in-flight steps are handled by the failure strategy."""

    at: datetime
    reason: FailureReason
    message: str


@dataclass(frozen=True, kw_only=True)
class CompensationStarted:
    at: datetime


@dataclass(frozen=True, kw_only=True)
class CompensationDispatched:
    at: datetime
    step: StepName
    attempt: int


@dataclass(frozen=True, kw_only=True)
class CompensationSucceeded:
    at: datetime
    step: StepName
    attempt: int


@dataclass(frozen=True, kw_only=True)
class CompensationFailed:
    at: datetime
    step: StepName
    attempt: int
    error: str
    retryable: bool
    retry_after_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class SuspendChanged:
    at: datetime
    suspended: bool


@dataclass(frozen=True, kw_only=True)
class AbortRequested:
    at: datetime


@dataclass(frozen=True, kw_only=True)
class RetryRequested:
    """``spec.retry`` was raised to ``request`` and applies (see ``levers``): failed
    compensations get a fresh retry budget, or Retriable steps past the Pivot a new deadline."""

    at: datetime
    request: int


@dataclass(frozen=True, kw_only=True)
class RetryRefused:
    """``spec.retry`` was raised to ``request`` where a retry does not apply; nothing changes
    but the acknowledgement, so the same request is never applied later by surprise."""

    at: datetime
    request: int
    message: str


@dataclass(frozen=True, kw_only=True)
class SagaFinished:
    at: datetime
    outcome: Outcome
    message: str


Event: TypeAlias = (
    SagaStarted
    | SagaRejected
    | StepDispatched
    | StepSucceeded
    | StepFailed
    | StepCancelled
    | SagaFailing
    | CompensationStarted
    | CompensationDispatched
    | CompensationSucceeded
    | CompensationFailed
    | SuspendChanged
    | AbortRequested
    | RetryRequested
    | RetryRefused
    | SagaFinished
)
