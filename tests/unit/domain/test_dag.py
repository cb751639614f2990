"""The step graph: what makes a definition invalid, and what the engine may start next."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagaz_operator.domain import dag
from sagaz_operator.domain.model import HttpCall, Step, StepKind, StepName
from sagaz_operator.errors import DefinitionError

COMPENSATABLE, PIVOT, RETRIABLE = StepKind.COMPENSATABLE, StepKind.PIVOT, StepKind.RETRIABLE


def step(
    name: str,
    *,
    after: Iterable[str] = (),
    kind: StepKind = COMPENSATABLE,
    compensated: bool = False,
) -> Step:
    return Step(
        name=StepName(name),
        kind=kind,
        depends_on=tuple(StepName(dependency) for dependency in after),
        action=HttpCall(url=f"http://{name}.test/do"),
        compensation=HttpCall(url=f"http://{name}.test/undo") if compensated else None,
    )


def names(*values: str) -> tuple[StepName, ...]:
    return tuple(StepName(value) for value in values)


def cycle_paths(found: Sequence[str]) -> list[list[str]]:
    prefix = "dependency cycle: "
    return [problem.removeprefix(prefix).split(" -> ") for problem in found if prefix in problem]


DIAMOND = (
    step("reserve"),
    step("charge", after=["reserve"]),
    step("notify", after=["reserve"]),
    step("ship", after=["charge", "notify"]),
)


class TestStructure:
    @pytest.mark.parametrize(
        "steps",
        [
            pytest.param([step("only")], id="single"),
            pytest.param([step("a"), step("b", after=["a"]), step("c", after=["b"])], id="chain"),
            pytest.param(DIAMOND, id="diamond"),
            pytest.param([step("b", after=["a"]), step("a")], id="dependency-defined-later"),
        ],
    )
    def test_valid_graphs_have_no_problems(self, steps: Sequence[Step]) -> None:
        assert dag.problems(steps) == []

    @pytest.mark.parametrize(
        ("steps", "expected"),
        [
            pytest.param([], ["a definition needs at least one step"], id="empty"),
            pytest.param(
                [step("x"), step("x"), step("x"), step("y"), step("y")],
                ["duplicate step name 'x'", "duplicate step name 'y'"],
                id="duplicates-once-each",
            ),
            pytest.param(
                [step("b", after=["zz", "zz"])],
                [
                    "step 'b' depends on unknown step 'zz'",
                    "step 'b' lists 'zz' in dependsOn more than once",
                ],
                id="unknown",
            ),
            pytest.param([step("a", after=["a"])], ["step 'a' depends on itself"], id="self"),
            pytest.param(
                [step("a"), step("b", after=["a", "a"])],
                ["step 'b' lists 'a' in dependsOn more than once"],
                id="repeated-dependency",
            ),
            pytest.param(
                [step("a", after=["b"]), step("b", after=["a"])],
                ["dependency cycle: a -> b -> a"],
                id="two-cycle",
            ),
            pytest.param(
                [step("c", after=["b"]), step("a", after=["c"]), step("b", after=["a"])],
                ["dependency cycle: c -> b -> a -> c"],
                id="starts-at-first-defined",
            ),
        ],
    )
    def test_each_problem_is_named(self, steps: Sequence[Step], expected: list[str]) -> None:
        assert dag.problems(steps) == expected

    def test_every_problem_is_reported_in_a_stable_order(self) -> None:
        steps = [
            step("q", after=["p"]),
            step("a", after=["a", "ghost"]),
            step("p", after=["q"]),
            step("a"),
            step("r", after=["s"]),
            step("s", after=["r"]),
        ]
        assert dag.problems(steps) == [
            "duplicate step name 'a'",
            "step 'a' depends on itself",
            "step 'a' depends on unknown step 'ghost'",
            "dependency cycle: q -> p -> q",
            "dependency cycle: r -> s -> r",
        ]

    def test_a_tangle_of_cycles_is_reported_once_by_its_shortest_cycle(self) -> None:
        steps = [
            step("a", after=["b"]),
            step("b", after=["c", "d"]),
            step("c", after=["a"]),
            step("d", after=["b"]),
        ]
        assert dag.problems(steps) == ["dependency cycle: a -> b -> c -> a"]

    def test_a_long_cycle_does_not_hit_the_recursion_limit(self) -> None:
        count = 3000
        steps = [step(f"s{i}", after=[f"s{(i + 1) % count}"]) for i in range(count)]
        [path] = cycle_paths(dag.problems(steps))
        assert len(path) == count + 1

    def test_kind_rules_wait_until_the_structure_is_sound(self) -> None:
        steps = [step("r", kind=RETRIABLE, after=["missing"])]
        assert dag.problems(steps) == ["step 'r' depends on unknown step 'missing'"]


class TestStepKinds:
    @pytest.mark.parametrize(
        "steps",
        [
            pytest.param([step("a"), step("b", after=["a"])], id="no-pivot"),
            pytest.param([step("p", kind=PIVOT)], id="pivot-alone"),
            pytest.param(
                [
                    step("reserve"),
                    step("check"),
                    step("charge", kind=PIVOT, after=["reserve", "check"]),
                    step("ship", kind=RETRIABLE, after=["charge"]),
                    step("mail", kind=RETRIABLE, after=["ship"]),
                    step("invoice", kind=RETRIABLE, after=["charge"]),
                ],
                id="compensatable-pivot-retriable",
            ),
            pytest.param(
                [step("reserve"), step("charge", kind=PIVOT, after=["reserve"])],
                id="pivot-last",
            ),
            pytest.param(
                [step("a"), step("b", after=["a"]), step("p", kind=PIVOT, after=["b"])],
                id="transitive-dependency-of-pivot",
            ),
        ],
    )
    def test_sagas_ordered_like_saga_theory_are_valid(self, steps: Sequence[Step]) -> None:
        assert dag.problems(steps) == []

    @pytest.mark.parametrize(
        ("steps", "expected"),
        [
            pytest.param(
                [step("p1", kind=PIVOT), step("p2", kind=PIVOT, after=["p1"])],
                "a definition may have at most one Pivot step, found 'p1', 'p2'",
                id="two-pivots",
            ),
            pytest.param(
                [step("a"), step("r", kind=RETRIABLE, after=["a"])],
                "step 'r' is Retriable but the definition has no Pivot step; "
                "Retriable steps are never compensated, so they must run after a Pivot",
                id="retriable-without-pivot",
            ),
            pytest.param(
                [step("charge", kind=PIVOT), step("ship", after=["charge"])],
                "step 'ship' is Compensatable but can run after the Pivot step 'charge'; "
                "steps after the Pivot must be Retriable",
                id="compensatable-after-pivot",
            ),
            pytest.param(
                [step("charge", kind=PIVOT), step("audit")],
                "step 'audit' is Compensatable but can run after the Pivot step 'charge'; "
                "make 'charge' depend on it",
                id="compensatable-unordered",
            ),
            pytest.param(
                [step("charge", kind=PIVOT), step("ship", kind=RETRIABLE)],
                "step 'ship' is Retriable but can run before the Pivot step 'charge'; "
                "Retriable steps are never compensated, so it must depend on 'charge'",
                id="retriable-unordered",
            ),
            pytest.param(
                [step("ship", kind=RETRIABLE), step("charge", kind=PIVOT, after=["ship"])],
                "step 'ship' is Retriable but can run before the Pivot step 'charge'; "
                "Retriable steps are never compensated, so it must depend on 'charge'",
                id="retriable-before-pivot",
            ),
            pytest.param(
                [
                    step("charge", kind=PIVOT),
                    step("ship", kind=RETRIABLE, after=["charge"], compensated=True),
                ],
                "step 'ship' is Retriable and never compensated; remove its compensation",
                id="retriable-with-compensation",
            ),
        ],
    )
    def test_violations_are_named(self, steps: Sequence[Step], expected: str) -> None:
        assert dag.problems(steps) == [expected]

    def test_a_compensatable_step_after_a_retriable_one_is_still_after_the_pivot(self) -> None:
        steps = [
            step("charge", kind=PIVOT),
            step("ship", kind=RETRIABLE, after=["charge"]),
            step("refund", after=["ship"]),
        ]
        assert dag.problems(steps) == [
            "step 'refund' is Compensatable but can run after the Pivot step 'charge'; "
            "steps after the Pivot must be Retriable"
        ]


class TestGraph:
    def test_answers_direct_and_transitive_questions(self) -> None:
        graph = dag.Graph(DIAMOND)
        assert graph.dependencies(StepName("ship")) == set(names("charge", "notify"))
        assert graph.dependents(StepName("reserve")) == set(names("charge", "notify"))
        assert graph.ancestors(StepName("ship")) == set(names("reserve", "charge", "notify"))
        assert graph.descendants(StepName("reserve")) == set(names("charge", "notify", "ship"))
        assert graph.ancestors(StepName("reserve")) == frozenset()
        assert graph.descendants(StepName("ship")) == frozenset()

    def test_knows_its_steps_in_definition_order(self) -> None:
        graph = dag.Graph(DIAMOND)
        assert graph.names == names("reserve", "charge", "notify", "ship")
        assert graph.step(StepName("charge")) is DIAMOND[1]
        assert StepName("ship") in graph
        assert "ghost" not in graph

    def test_topological_order_breaks_ties_by_definition_order(self) -> None:
        steps = [step("z"), step("y", after=["x"]), step("x"), step("w", after=["z"])]
        assert dag.Graph(steps).topological_order() == names("z", "x", "y", "w")

    def test_unknown_step_names_are_a_programming_error(self) -> None:
        with pytest.raises(KeyError):
            dag.Graph(DIAMOND).ancestors(StepName("ghost"))

    def test_refuses_a_structurally_invalid_step_list(self) -> None:
        with pytest.raises(DefinitionError, match=r"dependency cycle: a -> b -> a"):
            dag.Graph([step("a", after=["b"]), step("b", after=["a"])])


class TestRunnable:
    @pytest.mark.parametrize(
        ("succeeded", "started", "expected"),
        [
            pytest.param(set(), set(), ["reserve"], id="roots-first"),
            pytest.param({"reserve"}, {"reserve"}, ["charge", "notify"], id="fan-out"),
            pytest.param({"reserve"}, {"reserve", "charge"}, ["notify"], id="started-excluded"),
            pytest.param(
                {"reserve", "charge"}, {"reserve", "charge", "notify"}, [], id="fan-in-waits"
            ),
            pytest.param(
                {"reserve", "charge", "notify"},
                {"reserve", "charge", "notify"},
                ["ship"],
                id="fan-in-ready",
            ),
            pytest.param(
                {"reserve"}, {"reserve"} | {"charge", "notify", "ship"}, [], id="all-started"
            ),
        ],
    )
    def test_starts_steps_whose_dependencies_all_succeeded(
        self, succeeded: set[str], started: set[str], expected: list[str]
    ) -> None:
        graph = dag.Graph(DIAMOND)
        runnable = dag.runnable(
            graph,
            succeeded={StepName(s) for s in succeeded},
            started={StepName(s) for s in started},
        )
        assert runnable == names(*expected)

    def test_lists_ready_steps_in_definition_order(self) -> None:
        graph = dag.Graph([step("c"), step("a"), step("b")])
        assert dag.runnable(graph, succeeded=set(), started=set()) == names("c", "a", "b")


# --- properties over random graphs ----------------------------------------------------------


@st.composite
def acyclic_steps(draw: st.DrawFn) -> list[Step]:
    """A random DAG (edges only point to lower numbers), defined in a random order."""
    count = draw(st.integers(min_value=1, max_value=9))
    labels = [f"s{i}" for i in range(count)]
    dependencies = [
        draw(st.lists(st.sampled_from(labels[:i]), unique=True)) if i else [] for i in range(count)
    ]
    order = draw(st.permutations(range(count)))
    return [step(labels[i], after=dependencies[i]) for i in order]


@st.composite
def any_steps(draw: st.DrawFn) -> list[Step]:
    """A random directed graph over distinct names, cycles and self-loops included."""
    count = draw(st.integers(min_value=1, max_value=8))
    labels = [f"s{i}" for i in range(count)]
    return [
        step(label, after=draw(st.lists(st.sampled_from(labels), unique=True, max_size=3)))
        for label in labels
    ]


def edges_of(steps: Sequence[Step]) -> set[tuple[str, str]]:
    return {(s.name, dependency) for s in steps for dependency in s.depends_on}


def naive_ancestors(steps: Sequence[Step], name: str) -> set[str]:
    by_name = {s.name: s for s in steps}
    found: set[str] = set()
    pending = list(by_name[StepName(name)].depends_on)
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending.extend(by_name[StepName(current)].depends_on)
    return found


def is_acyclic(steps: Sequence[Step]) -> bool:
    remaining = {s.name: {d for d in s.depends_on if d != s.name} for s in steps}
    while remaining:
        free = [name for name, deps in remaining.items() if not deps & remaining.keys()]
        if not free:
            return False
        for name in free:
            del remaining[name]
    return True


@given(acyclic_steps())
def test_topological_order_puts_every_dependency_first(steps: list[Step]) -> None:
    order = dag.Graph(steps).topological_order()
    assert sorted(order) == sorted(s.name for s in steps)
    position: dict[str, int] = {name: index for index, name in enumerate(order)}
    for dependent, dependency in edges_of(steps):
        assert position[dependency] < position[dependent]


@given(acyclic_steps())
def test_acyclic_graphs_have_no_problems(steps: list[Step]) -> None:
    assert dag.problems(steps) == []


@given(acyclic_steps())
def test_ancestors_and_descendants_are_the_transitive_closure(steps: list[Step]) -> None:
    graph = dag.Graph(steps)
    for s in steps:
        assert graph.ancestors(s.name) == naive_ancestors(steps, s.name)
        for other in steps:
            assert (s.name in graph.descendants(other.name)) == (
                other.name in graph.ancestors(s.name)
            )


@given(acyclic_steps(), st.data())
def test_a_back_edge_is_reported_as_a_real_cycle(steps: list[Step], data: st.DataObject) -> None:
    graph = dag.Graph(steps)
    with_ancestors = [s for s in steps if graph.ancestors(s.name)]
    if not with_ancestors:
        return
    late = data.draw(st.sampled_from(with_ancestors))
    early = data.draw(st.sampled_from(sorted(graph.ancestors(late.name))))
    closed = [
        step(s.name, after=[*s.depends_on, late.name]) if s.name == early else s for s in steps
    ]
    paths = cycle_paths(dag.problems(closed))
    assert paths, "a back edge must create a cycle"
    edges = edges_of(closed)
    for path in paths:
        assert path[0] == path[-1]
        assert len(set(path[:-1])) == len(path) - 1
        assert all(pair in edges for pair in itertools.pairwise(path))


@given(any_steps())
def test_cycles_are_reported_exactly_when_there_are_some(steps: list[Step]) -> None:
    paths = cycle_paths(dag.problems(steps))
    assert (not paths) == is_acyclic(steps)
    edges = edges_of(steps)
    for path in paths:
        assert path[0] == path[-1]
        assert all(pair in edges for pair in itertools.pairwise(path))
    members = [name for path in paths for name in path[:-1]]
    assert len(members) == len(set(members)), "each tangle is reported once"


@given(acyclic_steps())
def test_running_whatever_is_runnable_runs_everything_in_dependency_order(
    steps: list[Step],
) -> None:
    graph = dag.Graph(steps)
    succeeded: set[StepName] = set()
    while batch := dag.runnable(graph, succeeded=succeeded, started=succeeded):
        for name in batch:
            assert graph.dependencies(name) <= succeeded
        succeeded |= set(batch)
    assert succeeded == set(graph.names)
