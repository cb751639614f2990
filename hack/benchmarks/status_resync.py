"""What the status resync costs at scale: one round over N finished sagas.

    source .dev/env && .venv/bin/python hack/benchmarks/status_resync.py --sagas 10000

Needs the local cluster (``make up``); starts a throw-away PostgreSQL of its own. Creates N
Sagas in a fresh namespace, each with a realistic status (a finished 3-step saga's
projection) and its journal in PostgreSQL, so no operator runs. Then measures the bytes of
a plain LIST against the Table LIST the resync uses, one round where everything agrees, and
one after 1% of the statuses were set back to Running (which it repairs). Deletes the
namespace and the database afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from harness import stack  # noqa: E402
from sagaz_operator.adapters.kube import Kube, ObjectRef  # noqa: E402
from sagaz_operator.adapters.postgres import migrations  # noqa: E402
from sagaz_operator.adapters.postgres.journal import Journal, SagaRecord  # noqa: E402
from sagaz_operator.adapters.postgres.phases import JournalPhases  # noqa: E402
from sagaz_operator.api.definition import API_VERSION  # noqa: E402
from sagaz_operator.domain import definitions, projection, state  # noqa: E402
from sagaz_operator.domain import events as ev  # noqa: E402
from sagaz_operator.domain.model import Json, SagaUid, StepName  # noqa: E402
from sagaz_operator.services.resync import SAGAS, Resync  # noqa: E402
from sagaz_operator.services.statuses import StatusOutbox  # noqa: E402

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPEC: dict[str, Json] = {
    "steps": [
        {"name": name, "action": {"http": {"url": f"http://shop.example/{name}"}}}
        for name in ("reserve", "charge", "ship")
    ]
}


def journal_of_a_finished_saga() -> list[ev.Event]:
    events: list[ev.Event] = [ev.SagaStarted(at=T0)]
    for i, name in enumerate(("reserve", "charge", "ship")):
        at = T0 + timedelta(seconds=i)
        events.append(ev.StepDispatched(at=at, step=StepName(name), attempt=1))
        events.append(
            ev.StepSucceeded(at=at, step=StepName(name), attempt=1, output={"id": f"{name}-1"})
        )
    events.append(
        ev.SagaFinished(
            at=T0 + timedelta(seconds=3),
            outcome=ev.Outcome.SUCCEEDED,
            message="all 3 steps succeeded",
        )
    )
    return events


async def create(kube: Kube, journal: Journal, namespace: str, index: int) -> ObjectRef:
    name = f"bench-{index}"
    body = {
        "apiVersion": API_VERSION,
        "kind": "Saga",
        "metadata": {"name": name},
        "spec": {"definition": SPEC, "input": {"orderId": str(index)}},
    }
    created = await kube.create(f"/apis/{API_VERSION}/namespaces/{namespace}/sagas", body)
    uid = created["metadata"]["uid"]
    events = journal_of_a_finished_saga()
    final = state.replay(state.initial(uid=SagaUid(uid), definition=definitions.load(SPEC)), events)
    record = SagaRecord(
        uid=uid,
        namespace=namespace,
        name=name,
        definition_name="",
        definition_generation=1,
        definition=SPEC,
        input={"orderId": str(index)},
    )
    await journal.start(record, first=events[0], phase=final.phase.value, finished=True)
    await journal.append(
        record, version=1, events=events[1:], phase=final.phase.value, finished=True
    )
    ref = ObjectRef(kind="Saga", plural="sagas", namespace=namespace, name=name, uid=uid)
    status = projection.status(final, now=T0, definition_name="", definition_generation=1)
    await kube.patch_status(ref, {**status, "observedGeneration": 1})
    return ref


def mean_size(items: list[Any]) -> float:
    return sum(len(json.dumps(item)) for item in items) / max(1, len(items))


async def in_batches(count: int, make: object, size: int = 40) -> list[ObjectRef]:
    made: list[ObjectRef] = []
    for start in range(0, count, size):
        made += await asyncio.gather(*(make(i) for i in range(start, min(count, start + size))))  # type: ignore[operator]
    return made


async def main(count: int) -> None:
    kube = Kube.from_environment()
    namespace = f"bench-resync-{uuid.uuid4().hex[:6]}"
    await kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    with stack.postgres("bench-resync") as database:
        await migrations.migrate_database(database.url)
        journal = await Journal.open(database.url)
        phases = await JournalPhases.open(database.url)
        try:
            started = time.monotonic()
            refs = await in_batches(count, lambda i: create(kube, journal, namespace, i))
            print(
                f"created {count} sagas with statuses and journals in "
                f"{time.monotonic() - started:.0f}s"
            )
            plain = await kube.get(SAGAS)
            assert plain is not None
            rows = [row async for row in kube.list_table(SAGAS)]
            print(
                "JSON bytes per saga listed: whole objects "
                f"{mean_size(plain['items']):.0f}, Table rows {mean_size(rows):.0f}"
            )
            resync = Resync(
                kube=kube,
                phases=phases,
                history=journal,
                outbox=StatusOutbox(kube=kube),
                clock=lambda: datetime.now(UTC),
                settle_seconds=0,
            )
            for label, tamper in (("all agree", 0), ("1% set back to Running", count // 100)):
                for ref in refs[:tamper]:
                    await kube.patch_status(ref, {"phase": "Running"})
                started = time.monotonic()
                done = await resync.once()
                print(
                    f"round, {label}: {time.monotonic() - started:.2f}s "
                    f"(listed {done.listed}, journaled {done.journaled}, "
                    f"repaired {done.repaired})"
                )
        finally:
            await journal.close()
            await phases.close()
            await kube.delete(f"/api/v1/namespaces/{namespace}")
            await kube.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=2000)
    asyncio.run(main(parser.parse_args().sagas))
