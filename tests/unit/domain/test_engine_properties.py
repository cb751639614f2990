"""Invariants of the engine over random DAGs and random failures (hypothesis)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.simulation import Fail, Hang, Ok, Outcome, Script, definition, simulate, step
from sagaz_operator.api.saga import SagaPhase
from sagaz_operator.domain import dag, state
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import FailureStrategy, Step


@st.composite
def dags(draw: st.DrawFn) -> tuple[Step, ...]:
    """Random DAGs: each step may depend on any of the steps defined before it."""
    count = draw(st.integers(min_value=1, max_value=8))
    steps = []
    for index in range(count):
        after = draw(st.sets(st.integers(min_value=0, max_value=index - 1))) if index else set()
        steps.append(step(f"s{index}", *(f"s{a}" for a in sorted(after)), timeout=5))
    return tuple(steps)


outcomes = st.sampled_from(
    [
        Ok(),
        Ok(duration=3),
        Fail(),
        Fail(retryable=True),
        Fail(retryable=True, outcome_unknown=True),
        Hang(),
    ]
)


@st.composite
def runs(draw: st.DrawFn) -> tuple[tuple[Step, ...], Script, FailureStrategy]:
    steps = draw(dags())
    actions: dict[str, list[Outcome]] = {
        s.name: draw(st.lists(outcomes, min_size=1, max_size=3)) for s in steps
    }
    strategy = draw(st.sampled_from(list(FailureStrategy)))
    return steps, Script(actions=actions), strategy


@settings(max_examples=300, deadline=None)
@given(runs())
def test_every_applied_step_is_compensated_once_after_its_dependents(
    run_input: tuple[tuple[Step, ...], Script, FailureStrategy],
) -> None:
    steps, script, strategy = run_input
    run = simulate(definition(*steps, strategy=strategy, grace=2), script)
    final = run.state
    graph = dag.Graph(steps)

    assert final.phase in (SagaPhase.SUCCEEDED, SagaPhase.COMPENSATED)
    compensated = Counter(run.steps_of(ev.CompensationSucceeded))
    if final.phase is SagaPhase.SUCCEEDED:
        assert not compensated
        return
    for name, step_state in final.steps.items():
        expected = 1 if (step_state.applied or step_state.maybe_applied) else 0
        assert compensated[name] == expected, name
    for event in run.of(ev.CompensationDispatched):
        assert isinstance(event, ev.CompensationDispatched)
        for dependent in graph.descendants(event.step):
            if compensated[dependent]:
                assert run.time_of(ev.CompensationSucceeded, dependent) <= event.at


@settings(max_examples=200, deadline=None)
@given(runs())
def test_the_journal_replays_to_the_same_state(
    run_input: tuple[tuple[Step, ...], Script, FailureStrategy],
) -> None:
    steps, script, strategy = run_input
    run = simulate(definition(*steps, strategy=strategy, grace=2), script)
    fresh = state.initial(uid=run.state.uid, definition=run.state.definition)

    assert state.replay(fresh, run.journal) == run.state


@settings(max_examples=200, deadline=None)
@given(runs())
def test_no_step_starts_before_its_dependencies_succeeded(
    run_input: tuple[tuple[Step, ...], Script, FailureStrategy],
) -> None:
    steps, script, strategy = run_input
    run = simulate(definition(*steps, strategy=strategy, grace=2), script)

    for event in run.of(ev.StepDispatched):
        assert isinstance(event, ev.StepDispatched)
        for dependency in dag.Graph(steps).dependencies(event.step):
            assert run.time_of(ev.StepSucceeded, dependency) <= event.at
