"""Sagas survive anything: kill -9 of the operator, a database restart, a second operator.

Each test runs operators of its own (real processes) against a PostgreSQL of its own, in an
``e2e-own-*`` namespace the session's operator leaves alone (the fixtures are in
``harness/isolated.py``). Participants answer idempotently by key, as the README asks of
them; the assertions read the participants' records and the journal itself.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from harness import kube, stack
from harness.isolated import chain, journal_integrity
from harness.operator import OperatorProcess
from harness.participants import Fail, ParticipantServer, Respond, Stall
from harness.sagas import Sagas, kwok_job

pytestmark = pytest.mark.cluster


async def test_kill_9_at_random_moments_loses_and_repeats_nothing(
    operators: Any, own_sagas: Sagas, shop: ParticipantServer, database: stack.Postgres
) -> None:
    count, kills = 24, 12
    failing = {f"crash-{i}" for i in range(0, count, 3)}
    for path in ("/a", "/b", "/c", "/a/undo", "/b/undo"):
        shop.on(path, Stall(0.4, then=Respond(json={"done": path})))
    for name in failing:
        shop.on("/c", Stall(0.4, then=Fail(400)), saga=name)
    operator: OperatorProcess = operators()
    operator.start()
    await own_sagas.define("chain", chain(shop))
    for i in range(count):
        await own_sagas.start(f"crash-{i}", {"definitionRef": {"name": "chain"}})

    moments = random.Random(20261122)
    for _ in range(kills):
        await asyncio.sleep(moments.uniform(0.3, 1.5))  # a random moment, on purpose
        operator.kill()
        await asyncio.to_thread(operator.start)
    phases = await own_sagas.wait_all([f"crash-{i}" for i in range(count)], within=300)

    for name, phase in phases.items():
        assert phase == ("Compensated" if name in failing else "Succeeded"), name
    for name in phases:
        requests = shop.requests(saga=name)
        keys = {r.idempotency_key for r in requests}
        undone = {r.path for r in requests if r.path.endswith("/undo")}
        # one key per step and purpose, whatever the number of deliveries
        assert len(keys) == len({(r.path) for r in requests}), name
        assert undone == ({"/a/undo", "/b/undo"} if name in failing else set()), name
    journals = await journal_integrity(database.url)
    assert set(journals) == set(phases)
    for name, types in journals.items():
        assert types["SagaFinished"] == 1, name
        assert types["CompensationSucceeded"] <= 2, name
        assert types["StepSucceeded"] <= 3, name


async def test_database_restart_pauses_then_finishes(
    operators: Any, own_sagas: Sagas, shop: ParticipantServer, database: stack.Postgres
) -> None:
    for path in ("/a", "/b", "/c", "/a/undo", "/b/undo"):
        shop.on(path, Stall(0.5, then=Respond()))
    operators().start()
    await own_sagas.define("chain", chain(shop))
    names = [f"db-{i}" for i in range(6)]
    for name in names:
        await own_sagas.start(name, {"definitionRef": {"name": "chain"}})
    await shop.wait_for_requests("/a", len(names))

    await asyncio.to_thread(database.stop)
    paused = await own_sagas.wait_for(
        lambda s: any(
            c["type"] == "DatabaseAvailable" and c["status"] == "False"
            for c in (s.get("status") or {}).get("conditions") or []
        )
    )
    await asyncio.to_thread(database.start)
    phases = await own_sagas.wait_all(names, within=120)

    assert paused["status"]["phase"] not in ("Failed", "Compensated")
    assert set(phases.values()) == {"Succeeded"}
    assert set(await journal_integrity(database.url)) == set(names)


async def test_two_operators_never_run_the_same_step(
    operators: Any, own_sagas: Sagas, shop: ParticipantServer, database: stack.Postgres
) -> None:
    for path in ("/a", "/b", "/c"):
        shop.on(path, Stall(0.1, then=Respond()))
    first, second = operators(), operators()
    first.start()
    second.start()
    await own_sagas.define("chain", chain(shop))
    names = [f"pair-{i}" for i in range(30)]
    for name in names:
        await own_sagas.start(name, {"definitionRef": {"name": "chain"}})

    phases = await own_sagas.wait_all(names, within=120)

    assert set(phases.values()) == {"Succeeded"}
    deliveries = Counter(r.idempotency_key for r in shop.requests())
    assert len(deliveries) == 3 * len(names)
    assert set(deliveries.values()) == {1}, "a step was dispatched twice"


async def test_status_catches_up_from_the_journal_after_a_crash(
    operators: Any, own_sagas: Sagas, shop: ParticipantServer
) -> None:
    shop.on("/a", Respond())
    shop.on("/b", Respond())
    gate = shop.on("/c", Stall())
    # Its first status write would come an interval after the first change: in an hour.
    lazy = operators(SAGAZ_STATUS_INTERVAL="3600")
    lazy.start()
    await own_sagas.start("lagging", {"definition": chain(shop)})
    await shop.wait_for_requests("/c", 1)

    lazy.kill()  # a and b are journaled as succeeded; the status never said so
    stale = await own_sagas.get("lagging")
    operators().start()
    caught_up = await own_sagas.wait_for(
        lambda s: (
            s["metadata"]["name"] == "lagging" and (s.get("status") or {}).get("progress") == "2/3"
        )
    )
    assert isinstance(gate, Stall)
    gate.release()
    final = await own_sagas.wait("lagging")

    assert (stale.get("status") or {}).get("progress") != "2/3"
    assert caught_up["status"]["steps"][2]["phase"] == "Running"
    assert final["status"]["phase"] == "Succeeded"
    keys = {r.idempotency_key for r in shop.requests("/c")}
    assert len(keys) == 1  # re-dispatched after the crash with the same key


@pytest.mark.usefixtures("kwok_node")
async def test_restart_while_a_job_runs_adopts_it(
    k8s: ApiClient, operators: Any, own_sagas: Sagas
) -> None:
    spec = {"steps": [{"name": "long", "action": kwok_job(output={"ok": 1}, delay="6s")}]}
    first: OperatorProcess = operators()
    first.start()
    await own_sagas.start("adopted", {"definition": spec, "input": {"orderId": "9"}})
    await asyncio.to_thread(
        kube.wait_for,
        client.BatchV1Api(k8s).list_namespaced_job,
        lambda j: j.metadata.labels.get("sagaz.io/saga") == "adopted",
        namespace=own_sagas.namespace,
    )

    first.kill()
    operators().start()
    saga = await own_sagas.wait("adopted")

    assert saga["status"]["phase"] == "Succeeded"
    assert saga["status"]["steps"][0]["output"] == {"ok": 1}
    listed = await asyncio.to_thread(
        client.BatchV1Api(k8s).list_namespaced_job,
        own_sagas.namespace,
        label_selector="sagaz.io/saga=adopted",
    )
    assert len(listed.items) == 1  # adopted, not created again
