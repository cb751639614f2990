"""The saga engine's decisions, driven through the deterministic simulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from harness.simulation import T0, Fail, Hang, Ok, Script, definition, simulate, step
from sagaz_operator.api.saga import SagaPhase, StepPhase
from sagaz_operator.domain import events as ev
from sagaz_operator.domain import state
from sagaz_operator.domain.model import FailureStrategy, StepKind

# reserve -> (charge, notify) -> ship : a DAG with a parallel branch
ORDER = (
    step("reserve"),
    step("charge", "reserve"),
    step("notify", "reserve"),
    step("ship", "charge", "notify"),
)


def phases(run_state: state.SagaState) -> dict[str, str]:
    return {name: s.phase.value for name, s in run_state.steps.items()}


class TestHappyPath:
    def test_every_step_runs_once_in_dependency_order(self) -> None:
        run = simulate(definition(*ORDER))

        assert run.state.phase is SagaPhase.SUCCEEDED
        assert run.steps_of(ev.StepDispatched) == ["reserve", "charge", "notify", "ship"]
        assert run.time_of(ev.StepDispatched, "ship") >= run.time_of(ev.StepSucceeded, "charge")

    def test_independent_steps_run_concurrently(self) -> None:
        run = simulate(definition(*ORDER))

        assert run.time_of(ev.StepDispatched, "charge") == run.time_of(ev.StepDispatched, "notify")

    def test_outputs_are_kept_for_later_steps(self) -> None:
        run = simulate(definition(*ORDER), Script(actions={"reserve": [Ok({"id": "r-1"})]}))

        assert run.state.outputs()["reserve"] == {"id": "r-1"}

    def test_replaying_the_journal_rebuilds_the_state(self) -> None:
        run = simulate(definition(*ORDER), Script(actions={"ship": [Fail()]}))
        fresh = state.initial(uid=run.state.uid, definition=run.state.definition)

        assert state.replay(fresh, run.journal) == run.state


class TestCompensation:
    @pytest.mark.parametrize(
        ("failing", "undone"),
        [
            ("reserve", []),
            ("charge", ["notify", "reserve"]),  # notify, in parallel, had succeeded
            ("ship", ["charge", "notify", "reserve"]),
        ],
    )
    def test_failure_at_each_position_undoes_what_ran(
        self, failing: str, undone: list[str]
    ) -> None:
        run = simulate(definition(*ORDER), Script(actions={failing: [Fail()]}))

        assert run.state.phase is SagaPhase.COMPENSATED
        assert sorted(run.steps_of(ev.CompensationSucceeded)) == sorted(undone)
        assert run.state.steps[failing].phase is StepPhase.FAILED

    def test_a_step_is_undone_only_after_its_dependents(self) -> None:
        run = simulate(definition(*ORDER), Script(actions={"ship": [Fail()]}))

        reserve_undo = run.time_of(ev.CompensationDispatched, "reserve")
        assert reserve_undo >= run.time_of(ev.CompensationSucceeded, "charge")
        assert reserve_undo >= run.time_of(ev.CompensationSucceeded, "notify")

    def test_independent_branches_compensate_in_parallel(self) -> None:
        run = simulate(definition(*ORDER), Script(actions={"ship": [Fail()]}))

        assert run.time_of(ev.CompensationDispatched, "charge") == run.time_of(
            ev.CompensationDispatched, "notify"
        )

    def test_steps_that_never_started_are_skipped(self) -> None:
        run = simulate(definition(*ORDER), Script(actions={"charge": [Fail()]}))

        assert run.state.steps["ship"].phase is StepPhase.SKIPPED

    def test_a_step_without_compensation_is_recorded_not_undone(self) -> None:
        steps = (step("audit", compensated=False), step("pay", "audit"))
        run = simulate(definition(*steps), Script(actions={"pay": [Fail()]}))

        assert run.state.phase is SagaPhase.COMPENSATED
        assert run.of(ev.CompensationDispatched) == []
        assert "no compensation defined for audit" in run.state.message

    def test_failed_compensation_blocks_upstream_but_not_other_branches(self) -> None:
        script = Script(
            actions={"ship": [Fail()]},
            compensations={"charge": [Fail(retryable=False)]},
        )
        run = simulate(definition(*ORDER), script)

        assert run.state.phase is SagaPhase.COMPENSATION_FAILED
        assert run.state.steps["notify"].phase is StepPhase.COMPENSATED
        assert run.state.steps["reserve"].phase is StepPhase.SUCCEEDED  # blocked, untouched
        assert "not compensated: reserve" in run.state.message

    def test_compensation_retries_then_succeeds(self) -> None:
        script = Script(
            actions={"charge": [Fail()]},
            compensations={"reserve": [Fail(retryable=True), Ok()]},
        )
        run = simulate(definition(*ORDER), script)

        assert run.state.phase is SagaPhase.COMPENSATED
        assert run.state.steps["reserve"].compensation.count == 2

    def test_compensation_exhausting_its_retries_fails_the_saga(self) -> None:
        script = Script(
            actions={"charge": [Fail()]}, compensations={"reserve": [Fail(retryable=True)]}
        )
        run = simulate(definition(*ORDER, compensation_attempts=4), script)

        assert run.state.phase is SagaPhase.COMPENSATION_FAILED
        assert run.steps_of(ev.CompensationDispatched).count("reserve") == 4


class TestRetries:
    def test_retryable_failures_back_off_then_succeed(self) -> None:
        script = Script(actions={"reserve": [Fail(retryable=True), Fail(retryable=True), Ok()]})
        run = simulate(definition(step("reserve", attempts=3)), script)

        attempts = [e.at for e in run.of(ev.StepDispatched)]
        failures = [e.at for e in run.of(ev.StepFailed)]
        waits = [(a - f).total_seconds() for f, a in zip(failures, attempts[1:], strict=True)]
        assert run.state.phase is SagaPhase.SUCCEEDED
        assert 0.5 <= waits[0] < 1.0  # initial 1s with equal jitter
        assert 1.0 <= waits[1] < 2.0  # doubled

    def test_retry_after_is_honoured(self) -> None:
        script = Script(actions={"reserve": [Fail(retryable=True, retry_after=7), Ok()]})
        run = simulate(definition(step("reserve")), script)

        first_failure, second_attempt = run.of(ev.StepFailed)[0].at, run.of(ev.StepDispatched)[1].at
        assert second_attempt - first_failure == timedelta(seconds=7)

    def test_non_retryable_failure_is_not_retried(self) -> None:
        run = simulate(definition(step("reserve")), Script(actions={"reserve": [Fail()]}))

        assert len(run.of(ev.StepDispatched)) == 1
        assert run.state.steps["reserve"].error == "failed (not retryable): boom"

    def test_exhausted_retries_fail_the_step_and_compensate(self) -> None:
        script = Script(actions={"charge": [Fail(retryable=True)]})
        run = simulate(definition(step("reserve"), step("charge", "reserve", attempts=4)), script)

        assert run.steps_of(ev.StepDispatched).count("charge") == 4
        assert run.state.phase is SagaPhase.COMPENSATED
        assert "failed after 4 attempts" in run.state.message


class TestTimeouts:
    def test_a_hung_attempt_times_out_and_is_retried(self) -> None:
        script = Script(actions={"reserve": [Hang(), Ok()]})
        run = simulate(definition(step("reserve", timeout=5)), script)

        failure = run.of(ev.StepFailed)[0]
        assert isinstance(failure, ev.StepFailed)
        assert failure.outcome_unknown
        assert failure.at == T0 + timedelta(seconds=5)
        assert run.state.phase is SagaPhase.SUCCEEDED

    def test_a_timed_out_step_that_finally_fails_is_still_compensated(self) -> None:
        script = Script(actions={"reserve": [Hang(), Fail()]})
        run = simulate(definition(step("reserve", timeout=5)), script)

        assert run.steps_of(ev.CompensationSucceeded) == ["reserve"]

    def test_the_saga_deadline_compensates_what_ran(self) -> None:
        script = Script(actions={"charge": [Hang()]})
        run = simulate(definition(*ORDER, timeout=20), script)

        assert run.state.failure is not None
        assert run.state.failure.reason is ev.FailureReason.DEADLINE_EXCEEDED
        assert run.state.phase is SagaPhase.COMPENSATED
        # charge was cut off in flight: its outcome is unknown, so it is compensated too
        assert sorted(run.steps_of(ev.CompensationSucceeded)) == ["charge", "notify", "reserve"]


class TestFailureStrategies:
    # charge fails at t=2; notify is in flight until t=11
    SCRIPT = Script(actions={"charge": [Fail()], "notify": [Ok(duration=10)]})

    def test_fail_fast_cancels_the_in_flight_sibling(self) -> None:
        run = simulate(definition(*ORDER, strategy=FailureStrategy.FAIL_FAST), self.SCRIPT)

        assert run.steps_of(ev.StepCancelled) == ["notify"]
        assert run.time_of(ev.StepCancelled, "notify") == T0 + timedelta(seconds=2)
        assert "notify" in run.steps_of(ev.CompensationSucceeded)  # outcome unknown

    def test_wait_all_lets_the_sibling_finish(self) -> None:
        run = simulate(definition(*ORDER, strategy=FailureStrategy.WAIT_ALL), self.SCRIPT)

        assert run.of(ev.StepCancelled) == []
        assert run.time_of(ev.StepSucceeded, "notify") == T0 + timedelta(seconds=11)
        assert run.time_of(ev.CompensationDispatched, "notify") >= T0 + timedelta(seconds=11)

    @pytest.mark.parametrize(("grace", "cancelled"), [(20, []), (3, ["notify"])])
    def test_grace_period_bounds_the_wait(self, grace: float, cancelled: list[str]) -> None:
        run = simulate(
            definition(*ORDER, strategy=FailureStrategy.FAIL_FAST_WITH_GRACE, grace=grace),
            self.SCRIPT,
        )

        assert run.steps_of(ev.StepCancelled) == cancelled
        if cancelled:
            assert run.time_of(ev.StepCancelled, "notify") == T0 + timedelta(seconds=2 + grace)

    def test_failing_saga_starts_nothing_new(self) -> None:
        run = simulate(definition(*ORDER, strategy=FailureStrategy.WAIT_ALL), self.SCRIPT)

        assert "ship" not in run.steps_of(ev.StepDispatched)


class TestSuspendAndAbort:
    def test_suspended_saga_starts_no_new_steps_until_resumed(self) -> None:
        script = Script(
            interventions=[
                (0.5, lambda at: ev.SuspendChanged(at=at, suspended=True)),
                (50, lambda at: ev.SuspendChanged(at=at, suspended=False)),
            ]
        )
        run = simulate(definition(*ORDER), script)

        assert run.state.phase is SagaPhase.SUCCEEDED
        assert run.time_of(ev.StepSucceeded, "reserve") == T0 + timedelta(seconds=1)  # finished
        assert run.time_of(ev.StepDispatched, "charge") == T0 + timedelta(seconds=50)

    def test_suspended_phase_is_reported(self) -> None:
        fresh = state.initial(uid=state.SagaUid("u"), definition=definition(*ORDER))
        started = state.evolve(fresh, ev.SagaStarted(at=T0))

        suspended = state.evolve(started, ev.SuspendChanged(at=T0, suspended=True))

        assert suspended.phase is SagaPhase.SUSPENDED

    def test_abort_cancels_and_compensates(self) -> None:
        script = Script(
            actions={"charge": [Ok(duration=10)]},
            interventions=[(5, lambda at: ev.AbortRequested(at=at))],
        )
        run = simulate(definition(*ORDER), script)

        assert run.state.failure is not None
        assert run.state.failure.reason is ev.FailureReason.ABORTED
        assert run.state.phase is SagaPhase.COMPENSATED
        assert sorted(run.steps_of(ev.StepCancelled)) == ["charge"]


class TestPivot:
    STEPS = (
        step("reserve"),
        step("charge", "reserve", kind=StepKind.PIVOT, compensated=False),
        step("ship", "charge", kind=StepKind.RETRIABLE, compensated=False),
    )

    def test_retriable_step_retries_past_max_attempts_until_success(self) -> None:
        script = Script(actions={"ship": [Fail()] * 5 + [Ok()]})
        run = simulate(definition(*self.STEPS), script)

        assert run.state.phase is SagaPhase.SUCCEEDED
        assert run.steps_of(ev.StepDispatched).count("ship") == 6

    def test_after_the_pivot_a_deadline_fails_without_compensating(self) -> None:
        script = Script(actions={"ship": [Fail(retryable=True)]})
        run = simulate(definition(*self.STEPS, timeout=60), script)

        assert run.state.phase is SagaPhase.FAILED
        assert run.of(ev.CompensationDispatched) == []
        assert "Pivot step succeeded" in run.state.message

    def test_a_failing_pivot_compensates_what_came_before(self) -> None:
        run = simulate(definition(*self.STEPS), Script(actions={"charge": [Fail()]}))

        assert run.state.phase is SagaPhase.COMPENSATED
        assert run.steps_of(ev.CompensationSucceeded) == ["reserve"]


def test_rejected_saga_fails_at_once() -> None:
    fresh = state.initial(uid=state.SagaUid("u"), definition=definition(*ORDER))

    rejected = state.evolve(fresh, ev.SagaRejected(at=T0, message="input: 'orderId' missing"))

    assert rejected.phase is SagaPhase.FAILED
    assert rejected.message == "input: 'orderId' missing"


def test_phases_after_a_mixed_run() -> None:
    run = simulate(definition(*ORDER), Script(actions={"notify": [Fail()]}))

    assert phases(run.state) == {
        "reserve": "Compensated",
        "charge": "Compensated",  # cancelled in flight by FailFast, then undone
        "notify": "Failed",
        "ship": "Skipped",
    }


def test_the_graph_is_built_once_per_definition_not_per_transition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sagaz_operator.domain import dag

    built: list[int] = []
    original = dag.Graph.__init__

    def counting(self: dag.Graph, steps: object) -> None:
        built.append(1)
        original(self, steps)  # type: ignore[arg-type]

    monkeypatch.setattr(dag.Graph, "__init__", counting)
    run = simulate(definition(step("a"), step("b", "a"), step("c", "b")))

    assert phases(run.state) == {"a": "Succeeded", "b": "Succeeded", "c": "Succeeded"}
    assert len(built) == 1
