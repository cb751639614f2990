"""The resync compares one LIST with one query and rewrites, from the journal, only the
statuses that disagree with it — in memory, with fakes of its ports."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from harness.fake_kube import FakeKube, saga_row
from sagaz_operator.adapters.kube import ObjectRef
from sagaz_operator.adapters.postgres.journal import SagaRecord, Stored
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.convergence import JournaledSaga
from sagaz_operator.domain.model import StepName
from sagaz_operator.domain.namespaces import Served
from sagaz_operator.services.resync import Resync
from sagaz_operator.services.statuses import StatusOutbox, event_name

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPEC = {"steps": [{"name": "a", "action": {"http": {"url": "http://s/a"}}}]}


def finished(outcome: ev.Outcome = ev.Outcome.SUCCEEDED) -> list[ev.Event]:
    return [
        ev.SagaStarted(at=T0),
        ev.StepDispatched(at=T0, step=StepName("a"), attempt=1),
        ev.StepSucceeded(at=T0 + timedelta(seconds=1), step=StepName("a"), attempt=1),
        ev.SagaFinished(at=T0 + timedelta(seconds=1), outcome=outcome, message="done"),
    ]


class Journal:
    """The journal's two read ports, counting their calls."""

    def __init__(self) -> None:
        self.sagas: dict[str, tuple[str, list[ev.Event]]] = {}  # uid -> (name, events)
        self.phase: dict[str, JournaledSaga] = {}
        self.phase_queries = 0
        self.loads = 0

    def add(self, name: str, events: list[ev.Event], *, phase: str, quiet: float = 60) -> str:
        uid = str(uuid.uuid4())
        self.sagas[uid] = (name, events)
        self.phase[uid] = JournaledSaga(
            phase=phase, finished=phase in ("Succeeded", "Failed"), quiet_seconds=quiet
        )
        return uid

    async def phases(self, uids: Sequence[str]) -> Mapping[str, JournaledSaga]:
        self.phase_queries += 1
        return {uid: self.phase[uid] for uid in uids if uid in self.phase}

    async def load(self, uid: str) -> Stored | None:
        self.loads += 1
        name, events = self.sagas[uid]
        record = SagaRecord(
            uid=uid,
            namespace="shop",
            name=name,
            definition_name="",
            definition_generation=1,
            definition=SPEC,
            input={},
        )
        return Stored(record=record, journal=events)


def resync(kube: FakeKube, journal: Journal, **options: object) -> tuple[Resync, StatusOutbox]:
    outbox = StatusOutbox(kube=kube)
    return (
        Resync(
            kube=kube,
            phases=journal,
            history=journal,
            outbox=outbox,
            clock=lambda: T0 + timedelta(minutes=5),
            **options,  # type: ignore[arg-type]
        ),
        outbox,
    )


async def test_repairs_a_finished_saga_shown_running_and_gives_it_its_terminal_event() -> None:
    kube, journal = FakeKube(), Journal()
    lost = journal.add("lost", finished(), phase="Succeeded")
    fine = journal.add("fine", finished(), phase="Succeeded")
    kube.table = [
        saga_row(uid=lost, name="lost", phase="Running", version="7"),
        saga_row(uid=fine, name="fine", phase="Succeeded"),
        saga_row(uid=str(uuid.uuid4()), name="not-ours", phase="Running"),
    ]
    kube.resource_versions = {lost: "7"}
    job, outbox = resync(kube, journal)

    done = await job.once()
    await outbox.close(grace=5)

    assert (done.listed, done.journaled, done.stale, done.repaired) == (3, 2, 1, 1)
    assert kube.statuses[lost]["phase"] == "Succeeded"
    assert kube.statuses[lost]["progress"] == "1/1"
    assert set(kube.statuses) == {lost}
    assert journal.loads == 1  # only the saga that disagreed was read in full
    lost_ref = ObjectRef(kind="Saga", plural="sagas", namespace="shop", name="lost", uid=lost)
    assert list(kube.events) == [event_name(lost_ref, "SagaSucceeded")]


async def test_a_saga_written_since_the_list_is_left_to_its_writer() -> None:
    kube, journal = FakeKube(), Journal()
    moved = journal.add("moved", finished(), phase="Succeeded")
    kube.table = [saga_row(uid=moved, name="moved", phase="Running", version="7")]
    kube.resource_versions = {moved: "8"}  # its executor wrote it after the LIST
    job, outbox = resync(kube, journal)

    done = await job.once()
    await outbox.close(grace=5)

    assert done.repaired == 0
    assert kube.statuses == {}
    assert kube.events == {}


async def test_a_saga_whose_journal_just_moved_is_left_to_its_executor() -> None:
    kube, journal = FakeKube(), Journal()
    busy = journal.add("busy", finished()[:2], phase="Running", quiet=0.1)
    kube.table = [saga_row(uid=busy, name="busy", phase="Pending")]
    job, _ = resync(kube, journal, settle_seconds=5.0)

    assert (await job.once()).repaired == 0


async def test_ten_thousand_sagas_cost_one_list_one_query_and_a_bounded_number_of_repairs() -> None:
    kube, journal = FakeKube(), Journal()
    for i in range(10_000):
        uid = journal.add(f"s-{i}", finished(), phase="Succeeded")
        shown = "Running" if i % 10 == 0 else "Succeeded"  # 1,000 disagree
        kube.table.append(saga_row(uid=uid, name=f"s-{i}", phase=shown))
        kube.resource_versions[uid] = "1"
    job, outbox = resync(kube, journal, max_repairs=100)

    first = await job.once()
    await outbox.close(grace=5)

    assert len(kube.tries("list_table")) == 1
    assert journal.phase_queries == 1
    assert (first.listed, first.stale, first.repaired) == (10_000, 100, 100)
    assert journal.loads == 100


async def test_each_replica_repairs_only_the_sagas_it_owns() -> None:
    kube, journal = FakeKube(), Journal()
    mine = journal.add("mine", finished(), phase="Succeeded")
    theirs = journal.add("theirs", finished(), phase="Succeeded")
    kube.table = [
        saga_row(uid=mine, name="mine", phase="Running", version="7"),
        saga_row(uid=theirs, name="theirs", phase="Running", version="7"),
    ]
    kube.resource_versions = {mine: "7", theirs: "7"}
    job, outbox = resync(kube, journal, owns=lambda uid: uid == mine)

    done = await job.once()
    await outbox.close(grace=5)

    assert (done.listed, done.repaired) == (1, 1)
    assert set(kube.statuses) == {mine}


async def test_only_the_served_namespaces_are_listed_and_repaired() -> None:
    """An operator serving ``team-*`` lists the cluster (a glob) but repairs only its own; one
    serving plain names lists each of them, not the cluster."""
    kube, journal = FakeKube(), Journal()
    ours = journal.add("ours", finished(), phase="Succeeded")
    other = journal.add("other", finished(), phase="Succeeded")
    kube.table = [
        saga_row(uid=ours, name="ours", phase="Running", namespace="team-a", version="7"),
        saga_row(uid=other, name="other", phase="Running", namespace="billing", version="7"),
    ]
    kube.resource_versions = {ours: "7", other: "7"}
    job, outbox = resync(kube, journal, served=Served(("team-*",)))

    done = await job.once()
    await outbox.close(grace=5)

    assert (done.listed, done.repaired) == (1, 1)
    assert set(kube.statuses) == {ours}

    paths = [f"/apis/sagaz.io/v1alpha1/namespaces/{name}/sagas" for name in ("a", "b")]
    listing = FakeKube()
    named, _ = resync(listing, Journal(), served=Served(("a", "b")))
    await named.once()
    assert [call.body for call in listing.tries("list_table")] == paths
