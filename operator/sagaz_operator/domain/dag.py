"""The dependency graph of a definition's steps: what is wrong with it, and what may run next.

``problems`` explains everything wrong with a step list in human words, because a
SagaDefinition's ``Ready`` condition is the only place a user learns why their saga is refused.
It checks, in this order, and reports every problem it finds (not just the first):

1. structure: no steps at all; duplicate step names; a step depending on itself or on a step
   that does not exist; dependency cycles. A cycle is reported once per tangle of steps (one
   strongly connected component), as the shortest path through its step that comes first in the
   definition, with arrows meaning "depends on": ``dependency cycle: a -> b -> a``. Listing
   every elementary cycle instead could be exponentially long, and breaking the one shown is
   how a user makes progress anyway;
2. the same dependency listed twice (harmless to run, but almost certainly a typo);
3. step kinds, skipped while the structure is broken because "before" and "after" mean
   nothing in a graph with cycles or dangling edges. Saga theory orders a saga as
   compensatable steps, then one pivot, then retriable steps. Retriable steps are never
   compensated and the pivot cannot be undone once it succeeded, so:

   a. there is at most one ``Pivot`` (one per path would be enough in theory; one per saga
      keeps the rules and the compensation plan simple);
   b. a ``Retriable`` step must transitively depend on the Pivot, so a Retriable step without
      any Pivot is an error: if it could run before or alongside the pivot, a later failure
      would leave it done and impossible to undo;
   c. a ``Compensatable`` (or second ``Pivot``) step must not transitively depend on the Pivot:
      once the pivot succeeded nothing may need undoing;
   d. every other step must be a transitive dependency of the Pivot: a step unordered
      relative to the pivot could run after it (if Compensatable) or before it (if Retriable),
      which is (b) or (c) again, just by chance of scheduling;
   e. a ``Retriable`` step has no ``compensation``: it would never run, and silently ignoring
      configuration hides mistakes.

``Graph`` answers the engine's questions about a valid step list (dependencies, dependents,
ancestors, descendants, a stable topological order) from tables computed once, since a saga
asks them on every decision. ``runnable`` is the DAG half of "what starts next".
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping, Sequence, Set

from sagaz_operator.domain.model import Step, StepKind, StepName
from sagaz_operator.errors import DefinitionError


def problems(steps: Sequence[Step]) -> list[str]:
    """Every problem of the step graph as a human message, in a stable order; empty if valid.

    Template references between steps are checked separately by
    ``domain.templates.reference_problems``.
    """
    structure = _structure_problems(steps)
    repeated = _repeated_dependency_problems(steps)
    if structure:
        return structure + repeated
    return repeated + _kind_problems(Graph(steps))


class Graph:
    """The dependency graph of a structurally valid step list (see ``problems``).

    Every answer is precomputed, so queries are dictionary lookups. Building a graph from a
    step list with structural problems raises ``DefinitionError`` (validate with ``problems``
    first). Unknown step names raise ``KeyError``, as a mapping would: asking about a step that
    is not in the definition is a programming error, not a user error.
    """

    __slots__ = (
        "_ancestors",
        "_dependencies",
        "_dependents",
        "_descendants",
        "_names",
        "_order",
        "_steps",
    )

    def __init__(self, steps: Sequence[Step]) -> None:
        broken = _structure_problems(steps)
        if broken:
            raise DefinitionError("; ".join(broken))
        self._names: tuple[StepName, ...] = tuple(step.name for step in steps)
        self._steps: dict[StepName, Step] = {step.name: step for step in steps}
        self._dependencies: dict[StepName, frozenset[StepName]] = {
            step.name: frozenset(step.depends_on) for step in steps
        }
        self._dependents = _reverse(self._dependencies, self._names)
        self._order = _topological_order(self._names, self._dependencies)
        self._ancestors = _closure(self._order, self._dependencies)
        self._descendants = _closure(tuple(reversed(self._order)), self._dependents)

    @property
    def names(self) -> tuple[StepName, ...]:
        """Every step's name, in definition order."""
        return self._names

    def __contains__(self, name: object) -> bool:
        return name in self._steps

    def step(self, name: StepName) -> Step:
        return self._steps[name]

    def dependencies(self, name: StepName) -> frozenset[StepName]:
        """The steps ``name`` directly depends on."""
        return self._dependencies[name]

    def dependents(self, name: StepName) -> frozenset[StepName]:
        """The steps that directly depend on ``name``."""
        return self._dependents[name]

    def ancestors(self, name: StepName) -> frozenset[StepName]:
        """Every step that must succeed before ``name`` may start (transitive dependencies)."""
        return self._ancestors[name]

    def descendants(self, name: StepName) -> frozenset[StepName]:
        """Every step that cannot start before ``name`` succeeded (transitive dependents)."""
        return self._descendants[name]

    def topological_order(self) -> tuple[StepName, ...]:
        """Dependencies before dependents; ties broken by definition order, so it is stable."""
        return self._order


def runnable(
    graph: Graph, *, succeeded: Set[StepName], started: Set[StepName]
) -> tuple[StepName, ...]:
    """Steps not started yet whose dependencies all succeeded, in definition order."""
    return tuple(
        name
        for name in graph.names
        if name not in started and name not in succeeded and graph.dependencies(name) <= succeeded
    )


# --- structure ----------------------------------------------------------------------------


def _structure_problems(steps: Sequence[Step]) -> list[str]:
    if not steps:
        return ["a definition needs at least one step"]
    found = _duplicate_problems(steps)
    known = {step.name for step in steps}
    for step in steps:
        for dependency in dict.fromkeys(step.depends_on):
            if dependency == step.name:
                found.append(f"step '{step.name}' depends on itself")
            elif dependency not in known:
                found.append(f"step '{step.name}' depends on unknown step '{dependency}'")
    found.extend(f"dependency cycle: {' -> '.join(cycle)}" for cycle in _cycles(steps))
    return found


def _duplicate_problems(steps: Sequence[Step]) -> list[str]:
    seen: set[StepName] = set()
    reported: set[StepName] = set()
    found = []
    for step in steps:
        if step.name in seen and step.name not in reported:
            found.append(f"duplicate step name '{step.name}'")
            reported.add(step.name)
        seen.add(step.name)
    return found


def _repeated_dependency_problems(steps: Sequence[Step]) -> list[str]:
    found = []
    for step in steps:
        seen: set[StepName] = set()
        for dependency in step.depends_on:
            if dependency in seen:
                found.append(f"step '{step.name}' lists '{dependency}' in dependsOn more than once")
            seen.add(dependency)
    return found


def _cycles(steps: Sequence[Step]) -> list[tuple[StepName, ...]]:
    """One cycle per strongly connected component, starting at its earliest-defined step.

    Self-dependencies and unknown dependencies are reported on their own and left out here;
    duplicated names are merged, which can only show a cycle that one of the copies takes part in.
    """
    names = tuple(dict.fromkeys(step.name for step in steps))
    edges: dict[StepName, list[StepName]] = {name: [] for name in names}
    for step in steps:
        edges[step.name].extend(d for d in step.depends_on if d in edges and d != step.name)
    position = {name: index for index, name in enumerate(names)}
    cycles = []
    for component in _strongly_connected_components(names, edges):
        if len(component) > 1:
            start = min(component, key=position.__getitem__)
            cycles.append(_shortest_cycle(start, edges, component))
    cycles.sort(key=lambda cycle: position[cycle[0]])
    return cycles


def _strongly_connected_components(
    names: Sequence[StepName], edges: Mapping[StepName, Sequence[StepName]]
) -> list[frozenset[StepName]]:
    """Tarjan's algorithm, iterative: a long chain of steps must not hit the recursion limit."""
    index: dict[StepName, int] = {}
    low: dict[StepName, int] = {}
    stack: list[StepName] = []
    on_stack: set[StepName] = set()
    components: list[frozenset[StepName]] = []
    for root in names:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    components.append(_pop_component(node, stack, on_stack))
            elif successor not in index:
                index[successor] = low[successor] = len(index)
                stack.append(successor)
                on_stack.add(successor)
                work.append((successor, iter(edges[successor])))
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
    return components


def _pop_component(
    node: StepName, stack: list[StepName], on_stack: set[StepName]
) -> frozenset[StepName]:
    members = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        members.append(member)
        if member == node:
            return frozenset(members)


def _shortest_cycle(
    start: StepName, edges: Mapping[StepName, Sequence[StepName]], within: Set[StepName]
) -> tuple[StepName, ...]:
    """Breadth-first from ``start`` back to itself; ``within`` is a strongly connected set."""
    came_from: dict[StepName, StepName] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in edges[node]:
            if successor == start:
                path = [start, node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return tuple(reversed(path))
            if successor in within and successor not in came_from:
                came_from[successor] = node
                queue.append(successor)
    raise AssertionError(f"{start!r} is on no cycle within {sorted(within)}")


# --- graph tables ---------------------------------------------------------------------------


def _reverse(
    dependencies: Mapping[StepName, frozenset[StepName]], names: Sequence[StepName]
) -> dict[StepName, frozenset[StepName]]:
    dependents: dict[StepName, set[StepName]] = {name: set() for name in names}
    for name, required in dependencies.items():
        for dependency in required:
            dependents[dependency].add(name)
    return {name: frozenset(found) for name, found in dependents.items()}


def _topological_order(
    names: Sequence[StepName], dependencies: Mapping[StepName, frozenset[StepName]]
) -> tuple[StepName, ...]:
    """Kahn's algorithm, always taking the earliest-defined ready step."""
    position = {name: index for index, name in enumerate(names)}
    dependents = _reverse(dependencies, names)
    waiting_for = {name: len(dependencies[name]) for name in names}
    ready = [position[name] for name in names if not waiting_for[name]]
    heapq.heapify(ready)
    order: list[StepName] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for dependent in dependents[name]:
            waiting_for[dependent] -= 1
            if not waiting_for[dependent]:
                heapq.heappush(ready, position[dependent])
    return tuple(order)


def _closure(
    order: Iterable[StepName], edges: Mapping[StepName, frozenset[StepName]]
) -> dict[StepName, frozenset[StepName]]:
    """Transitive closure of ``edges``, given an order in which every edge's target comes first."""
    reach: dict[StepName, frozenset[StepName]] = {}
    for name in order:
        found: set[StepName] = set(edges[name])
        for target in edges[name]:
            found |= reach[target]
        reach[name] = frozenset(found)
    return reach


# --- step kinds -----------------------------------------------------------------------------


def _kind_problems(graph: Graph) -> list[str]:
    pivots = [name for name in graph.names if graph.step(name).kind is StepKind.PIVOT]
    if len(pivots) > 1:
        listed = ", ".join(f"'{name}'" for name in pivots)
        found = [f"a definition may have at most one Pivot step, found {listed}"]
    else:
        pivot = pivots[0] if pivots else None
        found = [
            problem
            for name in graph.names
            if (problem := _ordering_problem(graph, name, pivot)) is not None
        ]
    found.extend(
        f"step '{name}' is Retriable and never compensated; remove its compensation"
        for name in graph.names
        if graph.step(name).kind is StepKind.RETRIABLE and graph.step(name).compensation is not None
    )
    return found


def _ordering_problem(graph: Graph, name: StepName, pivot: StepName | None) -> str | None:
    kind = graph.step(name).kind
    if pivot is None:
        if kind is StepKind.RETRIABLE:
            return (
                f"step '{name}' is Retriable but the definition has no Pivot step; "
                "Retriable steps are never compensated, so they must run after a Pivot"
            )
        return None
    if name == pivot:
        return None
    before = name in graph.ancestors(pivot)
    after = name in graph.descendants(pivot)
    if kind is StepKind.COMPENSATABLE and after:
        return (
            f"step '{name}' is Compensatable but can run after the Pivot step '{pivot}'; "
            "steps after the Pivot must be Retriable"
        )
    if kind is StepKind.COMPENSATABLE and not before:
        return (
            f"step '{name}' is Compensatable but can run after the Pivot step '{pivot}'; "
            f"make '{pivot}' depend on it"
        )
    if kind is StepKind.RETRIABLE and not after:
        return (
            f"step '{name}' is Retriable but can run before the Pivot step '{pivot}'; "
            f"Retriable steps are never compensated, so it must depend on '{pivot}'"
        )
    return None
