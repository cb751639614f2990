"""The bench's figures (hack/benchmarks/bench/figures.py): what counts as a correct saga and
how step overhead is measured at the participant. Pure arithmetic, no timing."""

from __future__ import annotations

import sys

from harness.stack import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "hack" / "benchmarks"))

from bench.figures import Run, figures, percentile
from bench.workload import Variant


def diamond(saga: str, start: float, *, undo: bool = False) -> list[tuple[str, str, float]]:
    rows = [(saga, "/a", start), (saga, "/b", start + 1), (saga, "/c", start + 2)]
    rows.append((saga, "/d", start + 4))
    if undo:
        rows += [
            (saga, "/b/undo", start + 5),
            (saga, "/c/undo", start + 5),
            (saga, "/a/undo", start + 8),
        ]
    return rows


def test_step_overhead_is_arrival_minus_the_latest_arrival_it_waited_for() -> None:
    run = Run(system="x", variant=Variant.INSTANT, n=1, started=0.0)
    run.finished, run.outcomes = {"s": 5.0}, {"s": "Succeeded"}
    run.records = diamond("s", 1.0)
    result = figures(run)
    # b and c wait for a (1 s, 2 s), d for the later of b and c (2 s).
    assert (result.overhead_p50, result.overhead_p99) == (2.0, 2.0)
    assert result.latency_p50 == 5.0
    assert result.wrong == 0
    assert result.sagas_per_s == 1 / 5.0
    assert result.steps_per_s == 4 / 5.0


def test_compensation_waits_for_the_failure_and_a_for_both_undos() -> None:
    run = Run(system="x", variant=Variant.COMPENSATE, n=1, started=0.0)
    run.finished, run.outcomes = {"s": 10.0}, {"s": "Compensated"}
    run.records = diamond("s", 0.0, undo=True)
    result = figures(run)
    assert result.wrong == 0
    # b 1, c 2, d 2, b/undo 1, c/undo 1, a/undo 3: nearest-rank median 1 s
    assert result.overhead_p50 == 1.0
    assert result.overhead_p99 == 3.0  # a/undo 3 s after the later undo


def test_a_repeated_request_a_wrong_phase_and_a_lost_saga_are_each_wrong() -> None:
    run = Run(system="x", variant=Variant.INSTANT, n=4, started=0.0)
    run.finished = {"retried": 5.0, "failed": 5.0, "fine": 5.0}
    run.outcomes = {"retried": "Succeeded", "failed": "Failed", "fine": "Succeeded"}
    run.records = [*diamond("retried", 0.0), ("retried", "/b", 1.5)]
    run.records += diamond("failed", 0.0) + diamond("fine", 0.0)
    result = figures(run)
    assert result.wrong == 3
    assert set(result.notes) == {
        "1 a request repeated (a retry)",
        "1 ended Failed",
        "1 never reached the participant nor finished",
    }


def test_percentile_is_nearest_rank() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert percentile(list(map(float, range(1, 101))), 0.99) == 99.0
