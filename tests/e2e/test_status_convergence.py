"""Every saga's status converges on its journal, whatever the API server does meanwhile.

The API server is frozen (SIGSTOP, longer than the operator's 30 s client timeout), restarted,
restarted with its watches expired (410 Gone), and the status is edited behind the operator's
back, while sagas run and finish. Afterwards every saga the journal says has finished shows
that terminal phase, and has exactly one terminal Event (``SagaSucceeded``,
``SagaCompensated``). The operators are our own processes, on a PostgreSQL of their own
(``harness/isolated.py``); only the API server this test stack started is touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from harness import apiserver, stack
from harness.isolated import chain
from harness.operator import OperatorProcess
from harness.participants import Fail, ParticipantServer, Respond, Stall
from harness.sagas import TERMINAL, Sagas

pytestmark = pytest.mark.cluster

#: Checked often in these tests, so a lost status is repaired well within their deadlines.
RESYNC = {"SAGAZ_RESYNC_INTERVAL": "3"}

#: Longer than the operator's Kubernetes client timeout (30 s): every call made meanwhile
#: times out rather than waits.
FREEZE_SECONDS = 40


@pytest.fixture
def local_api_server(cluster: stack.Cluster) -> None:
    if not cluster.local:
        pytest.skip("needs the local control plane's own kube-apiserver process")


async def start_staggered(
    shop: ParticipantServer, sagas: Sagas, names: list[str], *, first: float, spread: float
) -> None:
    """Start ``names`` (chain a -> b -> c) and return once every one is in step c, which
    answers ``first`` + i * ``spread`` seconds later; every fourth saga's c fails (400), so
    it ends Compensated, the others Succeeded."""
    for path in ("/a", "/b", "/a/undo", "/b/undo"):
        shop.on(path, Respond())
    for i, name in enumerate(names):
        then = Fail(400) if i % 4 == 3 else Respond()
        shop.on("/c", Stall(first + i * spread, then=then), saga=name)
    await sagas.define("chain", chain(shop))
    for name in names:
        await sagas.start(name, {"definitionRef": {"name": "chain"}})
    await shop.wait_for_requests("/c", len(names), within=120)


async def journaled(url: str) -> dict[str, tuple[str, float | None]]:
    """Per saga name: its journaled phase, and when it finished (epoch seconds) if it has."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT name, phase, EXTRACT(EPOCH FROM finished_at)::float8 AS f FROM sagaz_sagas"
        )
    finally:
        await conn.close()
    return {row["name"]: (row["phase"], row["f"]) for row in rows}


async def converged(sagas: Sagas, expected: Mapping[str, str], *, within: float) -> None:
    """Wait until every saga in ``expected`` shows that phase at once (a later regression,
    such as a stale write applied late, counts against it until repaired)."""
    latest: dict[str, str | None] = {}

    def record(item: dict[str, Any]) -> bool:
        latest[item["metadata"]["name"]] = (item.get("status") or {}).get("phase")
        return all(latest.get(name) == phase for name, phase in expected.items())

    await sagas.wait_for(record, within=within)


async def assert_converged_with_events(
    sagas: Sagas, database: stack.Postgres, names: list[str], *, within: float = 180
) -> dict[str, tuple[str, float | None]]:
    """Every saga finished in the journal shows its journaled phase and has exactly one
    terminal Event saying so; the journal's view, for further checks."""
    await sagas.wait_all(names, within=within)
    journal = await journaled(database.url)
    truth = {name: journal[name][0] for name in names}
    assert set(truth.values()) <= set(TERMINAL), truth  # a terminal status lags the journal
    await converged(sagas, truth, within=60)
    for name, phase in truth.items():
        reason = f"Saga{phase}"
        seen = await sagas.events(name, until=has(reason))
        assert [r for r, _ in seen].count(reason) == 1, (name, seen)
    return journal


def has(reason: str) -> Callable[[list[str]], bool]:
    return lambda reasons: reason in reasons


async def test_a_frozen_api_server_loses_no_status_and_no_terminal_event(
    local_api_server: None,
    operators: Any,
    own_sagas: Sagas,
    shop: ParticipantServer,
    database: stack.Postgres,
) -> None:
    names = [f"frozen-{i}" for i in range(40)]
    operator: OperatorProcess = operators(**RESYNC)
    operator.start()
    await start_staggered(shop, own_sagas, names, first=6, spread=0.5)

    frozen_from = time.time()
    with apiserver.frozen():
        await asyncio.sleep(FREEZE_SECONDS)  # the outage itself: nothing to wait for
    frozen_until = time.time()
    journal = await assert_converged_with_events(own_sagas, database, names)

    finished_while_frozen = [
        name for name in names if frozen_from <= (journal[name][1] or 0) <= frozen_until
    ]
    print(f"{len(finished_while_frozen)} of {len(names)} sagas finished while frozen")
    assert len(finished_while_frozen) >= len(names) // 2, finished_while_frozen
    assert "not written" in operator.log.read_text()  # the writes did fail meanwhile


async def test_a_restarted_api_server_loses_no_status_and_no_terminal_event(
    local_api_server: None,
    operators: Any,
    own_sagas: Sagas,
    shop: ParticipantServer,
    database: stack.Postgres,
) -> None:
    names = [f"restarted-{i}" for i in range(20)]
    operator: OperatorProcess = operators(**RESYNC)
    operator.start()
    await start_staggered(shop, own_sagas, names, first=2, spread=0.4)

    down_from = time.time()
    await asyncio.to_thread(apiserver.restart)
    back_at = time.time()
    journal = await assert_converged_with_events(own_sagas, database, names)

    finished_while_down = [
        name for name in names if down_from <= (journal[name][1] or 0) <= back_at
    ]
    print(f"{len(finished_while_down)} of {len(names)} sagas finished while it restarted")
    assert finished_while_down, "no saga finished while the API server was down"
    assert "not written" in operator.log.read_text()


async def test_an_expired_watch_is_listed_again_and_levers_still_work(
    local_api_server: None,
    operators: Any,
    own_sagas: Sagas,
    shop: ParticipantServer,
    database: stack.Postgres,
) -> None:
    # The Sagas' watch answers 410 Gone by listing again (services/informer.py): this shows
    # it does, and that nothing of ours depends on the stream.
    names = [f"expired-{i}" for i in range(8)]
    operator: OperatorProcess = operators("--verbose", **RESYNC)
    operator.start()
    await start_staggered(shop, own_sagas, names, first=2, spread=0.5)
    shop.on("/c", Stall(), saga="held")  # in step c until the test ends
    await own_sagas.start("held", {"definitionRef": {"name": "chain"}})
    await shop.wait_for_requests("/c", 1, saga="held")

    await asyncio.to_thread(apiserver.restart, expire_watches=True)
    await own_sagas.patch_object("sagas", "held", {"abort": True})
    shop.on("/c", Respond(), saga="after")
    await own_sagas.start("after", {"definitionRef": {"name": "chain"}})

    await assert_converged_with_events(own_sagas, database, [*names, "held", "after"])
    phases = {name: phase for name, (phase, _) in (await journaled(database.url)).items()}
    assert phases["held"] == "Compensated"  # the abort arrived through the new watch
    assert phases["after"] == "Succeeded"
    log = operator.log.read_text()
    assert "410 Gone from version" in log, "no 410 Gone was provoked"


async def test_the_resync_repairs_a_status_edited_or_never_written(
    k8s: ApiClient,
    operators: Any,
    own_sagas: Sagas,
    shop: ParticipantServer,
    database: stack.Postgres,
) -> None:
    for path in ("/a", "/b", "/c"):
        shop.on(path, Respond())
    operator: OperatorProcess = operators(**RESYNC)
    operator.start()
    await own_sagas.define("chain", chain(shop))
    names = ["edited", "erased", "offline"]
    for name in names:
        await own_sagas.start(name, {"definitionRef": {"name": "chain"}})
    await assert_converged_with_events(own_sagas, database, names)
    custom, core = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s)

    async def set_phase(name: str, phase: str | None) -> None:
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object_status,
            "sagaz.io",
            "v1alpha1",
            own_sagas.namespace,
            "sagas",
            name,
            {"status": {"phase": phase}},
        )

    # While the operator runs: a finished saga set back to Running, with its terminal Event
    # deleted, and one whose phase was never written (removed).
    await set_phase("edited", "Running")
    await set_phase("erased", None)
    listed = await asyncio.to_thread(
        core.list_namespaced_event,
        own_sagas.namespace,
        field_selector="involvedObject.name=edited,reason=SagaSucceeded",
    )
    for event in listed.items:
        await asyncio.to_thread(
            core.delete_namespaced_event, event.metadata.name, event.metadata.namespace
        )
    await assert_converged_with_events(own_sagas, database, ["edited", "erased"], within=60)

    # While it is stopped: the next one repairs it when it starts.
    operator.stop()
    await set_phase("offline", "Running")
    operators(**RESYNC).start()
    await assert_converged_with_events(own_sagas, database, names, within=60)
    assert "rewritten from the journal" in operator.log.read_text()
