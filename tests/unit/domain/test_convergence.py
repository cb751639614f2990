"""Which statuses the resync repairs: only ours, only where the phase differs, only once the
journal is quiet, finished sagas first, never more than the limit."""

from __future__ import annotations

from sagaz_operator.domain.convergence import JournaledSaga, ListedSaga, out_of_date


def listed(uid: str, phase: str) -> ListedSaga:
    return ListedSaga(
        uid=uid, namespace="shop", name=uid, resource_version="1", generation=1, phase=phase
    )


def journaled(phase: str, *, quiet: float = 60.0) -> JournaledSaga:
    return JournaledSaga(
        phase=phase, finished=phase in ("Succeeded", "Compensated"), quiet_seconds=quiet
    )


def test_only_sagas_of_this_journal_whose_phases_differ() -> None:
    sagas = [listed("a", "Running"), listed("b", "Succeeded"), listed("c", "Running")]
    truth = {"a": journaled("Succeeded"), "b": journaled("Succeeded")}

    assert [s.uid for s in out_of_date(sagas, truth, settle_seconds=5, limit=10)] == ["a"]


def test_a_status_never_written_counts_as_different() -> None:
    assert out_of_date([listed("a", "")], {"a": journaled("Pending")}, settle_seconds=0, limit=1)


def test_a_journal_that_just_moved_is_left_to_its_executor() -> None:
    truth = {"a": journaled("Running", quiet=1.0), "b": journaled("Running", quiet=9.0)}
    sagas = [listed("a", "Pending"), listed("b", "Pending")]

    assert [s.uid for s in out_of_date(sagas, truth, settle_seconds=5, limit=10)] == ["b"]


def test_finished_sagas_first_and_no_more_than_the_limit() -> None:
    sagas = [listed("r1", "Pending"), listed("f1", "Running"), listed("r2", "Pending")]
    sagas.append(listed("f2", "Running"))
    truth = {
        "r1": journaled("Running"),
        "f1": journaled("Succeeded"),
        "r2": journaled("Running"),
        "f2": journaled("Compensated"),
    }

    chosen = out_of_date(sagas, truth, settle_seconds=0, limit=3)

    assert [s.uid for s in chosen] == ["f1", "f2", "r1"]
