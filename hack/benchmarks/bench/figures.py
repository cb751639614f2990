"""From raw observations to the figures of the table, the same way for every system.

A system reports when it started the batch and when it saw each saga finish (and how); the
participant reports when each request arrived. Everything is on ``time.monotonic()``.

- **sagas/s, steps/s**: sagas (participant requests) over the time from the start of the
  batch to the last saga seen finished.
- **saga latency**: from the start of the batch (all N are started at once) to that saga
  seen finished, so at N=1000 it includes the wait behind the other sagas.
- **step overhead**: at the participant, a request's arrival minus the latest arrival of
  the requests it depended on (``workload.AFTER``). It includes the participant's own answer
  time (20 ms in the slow variant) and the orchestrator's work in between.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.workload import Variant


@dataclass
class Run:
    """What one system observed running N sagas of one variant."""

    system: str
    variant: Variant
    n: int
    started: float
    finished: dict[str, float] = field(default_factory=dict)  # saga -> seen finished at
    outcomes: dict[str, str] = field(default_factory=dict)  # saga -> terminal phase
    records: list[tuple[str, str, float]] = field(default_factory=list)  # participant's
    extra: dict[str, float] = field(default_factory=dict)  # system-specific figures
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Figures:
    system: str
    variant: Variant
    n: int
    sagas_per_s: float
    steps_per_s: float
    latency_p50: float
    latency_p99: float
    overhead_p50: float
    overhead_p99: float
    wrong: int  # sagas missing, in the wrong phase, or with a missing/duplicate request
    extra: dict[str, float]
    notes: tuple[str, ...]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def figures(run: Run) -> Figures:
    by_saga: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for saga, path, at in run.records:
        by_saga[saga][path].append(at)
    overheads: list[float] = []
    why: dict[str, int] = defaultdict(int)
    for saga in run.finished.keys() | by_saga.keys():
        arrivals = by_saga.get(saga, {})
        if saga not in run.finished:
            why["not seen finished"] += 1
        elif run.outcomes.get(saga) != run.variant.outcome:
            why[f"ended {run.outcomes.get(saga)}"] += 1
        elif any(len(arrivals.get(p, ())) > 1 for p in run.variant.paths):
            why["a request repeated (a retry)"] += 1
        elif any(len(arrivals.get(p, ())) != 1 for p in run.variant.paths):
            why["a request missing"] += 1
        for target, deps in run.variant.after.items():
            if arrivals.get(target) and all(arrivals.get(d) for d in deps):
                overheads.append(min(arrivals[target]) - max(min(arrivals[d]) for d in deps))
    missing = run.n - len(run.finished.keys() | by_saga.keys())
    if missing > 0:
        why["never reached the participant nor finished"] += missing
    wrong = sum(why.values())
    notes = list(run.notes) + [f"{count} {reason}" for reason, count in sorted(why.items())]
    end = max(run.finished.values(), default=run.started)
    elapsed = max(end - run.started, 1e-9)
    latencies = [at - run.started for at in run.finished.values()]
    return Figures(
        system=run.system,
        variant=run.variant,
        n=run.n,
        sagas_per_s=len(run.finished) / elapsed,
        steps_per_s=len(run.records) / elapsed,
        latency_p50=percentile(latencies, 0.5),
        latency_p99=percentile(latencies, 0.99),
        overhead_p50=percentile(overheads, 0.5),
        overhead_p99=percentile(overheads, 0.99),
        wrong=wrong,
        extra=dict(run.extra),
        notes=tuple(notes),
    )
