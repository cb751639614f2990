"""``spec.retry``: when a retry applies, what it revives, and that it is refused elsewhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import pytest

from harness.simulation import T0, Fail, Hang, Run, Script, definition, simulate, step
from sagaz_operator.api.saga import SagaPhase, StepPhase
from sagaz_operator.domain import codec, levers, state
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import StepKind

ORDER = (
    step("reserve"),
    step("charge", "reserve"),
    step("ship", "charge"),
)
PIVOTED = (
    step("reserve"),
    step("charge", "reserve", kind=StepKind.PIVOT, compensated=False),
    step("ship", "charge", kind=StepKind.RETRIABLE, compensated=False),
)


def retry(request: int = 1) -> Callable[[state.SagaState, datetime], ev.Event]:
    def make(current: state.SagaState, at: datetime) -> ev.Event:
        return levers.retry(current, request=request, at=at)

    return make


def compensation_failed() -> Run:
    """ship fails; charge's compensation fails every time (3 attempts): CompensationFailed."""
    run = simulate(
        definition(*ORDER),
        Script(actions={"ship": [Fail()]}, compensations={"charge": [Fail(retryable=True)]}),
    )
    assert run.state.phase is SagaPhase.COMPENSATION_FAILED
    return run


class TestRetryCompensation:
    def test_after_the_participant_is_fixed_the_saga_ends_compensated(self) -> None:
        failed = compensation_failed()

        run = simulate(definition(*ORDER), Script(), after=failed, then=retry())

        assert run.state.phase is SagaPhase.COMPENSATED
        assert run.state.steps["charge"].phase is StepPhase.COMPENSATED
        # reserve, which waited for charge to be undone first, is undone after it
        assert run.state.steps["reserve"].phase is StepPhase.COMPENSATED
        assert failed.state.finished_at is not None
        assert run.time_of(ev.CompensationDispatched, "reserve") > failed.state.finished_at
        assert run.state.retry_seen == 1

    def test_attempt_numbers_go_on_and_the_budget_is_fresh(self) -> None:
        failed = compensation_failed()
        still_broken = Script(compensations={"charge": [Fail(retryable=True)]})

        run = simulate(definition(*ORDER), still_broken, after=failed, then=retry())

        assert run.state.phase is SagaPhase.COMPENSATION_FAILED
        attempts = [
            e.attempt
            for e in run.of(ev.CompensationDispatched)
            if isinstance(e, ev.CompensationDispatched) and e.step == "charge"
        ]
        assert attempts == [1, 2, 3, 4, 5, 6]  # three more: a whole new budget
        assert run.state.steps["charge"].error == "compensation failed after 3 attempts: boom"

    def test_the_journal_replays_through_json_to_the_same_state(self) -> None:
        run = simulate(definition(*ORDER), Script(), after=compensation_failed(), then=retry())
        stored = [json.loads(json.dumps(codec.encode(event))) for event in run.journal]

        fresh = state.initial(uid=run.state.uid, definition=run.state.definition)
        assert state.replay(fresh, [codec.decode(body) for body in stored]) == run.state


class TestRetryForward:
    def test_retriable_steps_that_ran_out_of_time_get_a_new_deadline(self) -> None:
        failed = simulate(
            definition(*PIVOTED, timeout=60), Script(actions={"ship": [Fail(retryable=True)]})
        )
        assert failed.state.phase is SagaPhase.FAILED

        run = simulate(definition(*PIVOTED, timeout=60), Script(), after=failed, then=retry())

        assert run.state.phase is SagaPhase.SUCCEEDED
        assert run.of(ev.CompensationDispatched) == []
        assert run.state.steps["charge"].action.count == 1  # the Pivot never runs again

    def test_an_abort_after_the_pivot_is_not_retried(self) -> None:
        script = Script(
            actions={"ship": [Hang()]}, interventions=[(10, lambda at: ev.AbortRequested(at=at))]
        )
        aborted = simulate(definition(*PIVOTED), script)
        assert aborted.state.phase is SagaPhase.FAILED

        refusal = levers.retry_refusal(aborted.state)

        assert (
            refusal == "this saga was aborted (spec.abort) after its Pivot step; it is not retried"
        )


class TestRefusals:
    def test_a_rejected_saga_is_not_retried(self) -> None:
        fresh = state.initial(uid=state.SagaUid("u"), definition=definition(*ORDER))
        rejected = state.evolve(fresh, ev.SagaRejected(at=T0, message="invalid input"))

        event = levers.retry(rejected, request=1, at=T0)

        assert isinstance(event, ev.RetryRefused)
        assert "rejected before it ran" in event.message

    @pytest.mark.parametrize(
        ("script", "phase"),
        [(Script(), "Succeeded"), (Script(actions={"ship": [Fail()]}), "Compensated")],
    )
    def test_a_saga_that_ended_well_refuses(self, script: Script, phase: str) -> None:
        run = simulate(definition(*ORDER), script)

        event = levers.retry(run.state, request=2, at=T0)

        assert event == ev.RetryRefused(
            at=T0,
            request=2,
            message="spec.retry applies to a CompensationFailed saga, or a Failed one whose "
            f"Retriable steps ran out of time; this saga is {phase}",
        )

    def test_a_refused_request_is_acknowledged_and_changes_nothing_else(self) -> None:
        run = simulate(definition(*ORDER))
        refused = levers.retry(run.state, request=3, at=T0)

        after = state.evolve(run.state, refused)

        assert after == state.SagaState(**{**run.state.__dict__, "retry_seen": 3})

    def test_running_saga_refuses(self) -> None:
        fresh = state.initial(uid=state.SagaUid("u"), definition=definition(*ORDER))
        running = state.evolve(fresh, ev.SagaStarted(at=T0))

        assert "this saga is Running" in (levers.retry_refusal(running) or "")

    @pytest.mark.parametrize("lever", ["suspend", "abort"])
    def test_suspend_and_abort_have_no_effect_once_finished(self, lever: str) -> None:
        assert levers.finished_refusal(SagaPhase.SUCCEEDED, lever) == (
            f"spec.{lever} has no effect: the saga has finished (Succeeded)"
        )
        assert levers.finished_refusal(SagaPhase.RUNNING, lever) is None
