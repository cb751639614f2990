"""The user's levers on a saga (``spec.suspend``, ``spec.abort``, ``spec.retry``): when each
applies, and what it becomes in the journal.

``spec.retry`` is a counter, in the spirit of ``kubectl rollout restart``: raising it asks
for one retry; the request is journaled (``RetryRequested`` or ``RetryRefused``) and
``status.observedRetry`` acknowledges it, so a value is acted on exactly once — applying the
same manifest again, or an operator restart, never retries twice, and a request made while it
did not apply is never applied later by surprise. A retry applies to:

- a **CompensationFailed** saga: its failed compensations are due again with a fresh retry
  budget (someone fixed the participant); compensation goes on in the usual order, and the
  saga ends ``Compensated`` or ``CompensationFailed`` again.
- a **Failed** saga whose **Retriable steps ran out of time** past the Pivot: they are due
  again under a new saga deadline (``timeoutSeconds`` from now). Sound because Retriable
  steps are, by the definition's own declaration, safe to repeat until they succeed, every
  step that is not Retriable succeeded before the Pivot (the definition checks guarantee
  it), and the idempotency key is the same as before.

Refused, with a message, everywhere else: a saga still running or compensating (nothing has
failed for good yet), one that ended well (Succeeded, Compensated), one rejected before it
ran (fix the cause and create it again: its input or definition is wrong, a retry would
fail the same way), and one aborted after its Pivot (someone asked it to stop).
"""

from __future__ import annotations

from datetime import datetime

from sagaz_operator.api.saga import SagaPhase, StepPhase
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import StepKind
from sagaz_operator.domain.state import SagaState

FINISHED = frozenset(
    {
        SagaPhase.SUCCEEDED,
        SagaPhase.COMPENSATED,
        SagaPhase.COMPENSATION_FAILED,
        SagaPhase.FAILED,
    }
)


def retry_refusal(state: SagaState) -> str | None:
    """Why ``spec.retry`` does not apply to the saga now, or None if it does."""
    phase = state.phase
    if phase is SagaPhase.COMPENSATION_FAILED:
        return None
    if phase is not SagaPhase.FAILED:
        return (
            "spec.retry applies to a CompensationFailed saga, or a Failed one whose Retriable "
            f"steps ran out of time; this saga is {phase.value}"
        )
    if state.started_at is None or not state.pivot_succeeded:
        return (
            "this saga was rejected before it ran (see status.message); a retry would fail "
            "the same way: fix the cause and create the Saga again"
        )
    if state.abort_requested:
        return "this saga was aborted (spec.abort) after its Pivot step; it is not retried"
    stuck = [
        name
        for step in state.definition.steps
        if state.steps[(name := step.name)].phase is StepPhase.FAILED
        and step.kind is not StepKind.RETRIABLE
    ]
    if stuck:
        return (
            f"step(s) {', '.join(stuck)} failed for good; only Retriable steps past the "
            "Pivot are retried"
        )
    return None


def retry(state: SagaState, *, request: int, at: datetime) -> ev.Event:
    """The journal event for ``spec.retry`` raised to ``request``."""
    refusal = retry_refusal(state)
    if refusal is not None:
        return ev.RetryRefused(at=at, request=request, message=refusal)
    return ev.RetryRequested(at=at, request=request)


def finished_refusal(phase: SagaPhase | None, lever: str) -> str | None:
    """Why ``spec.suspend`` / ``spec.abort`` has no effect in ``phase``, if it has none."""
    if phase in FINISHED:
        assert phase is not None
        return f"spec.{lever} has no effect: the saga has finished ({phase.value})"
    return None
