"""Scale-out: operator replicas divide the sagas instead of each trying every one.

Real operator processes (``harness/isolated.py``), each with its own replica id and member
Lease, against the real API server and a PostgreSQL of the test's own. Participants record
every request with its idempotency key, so "nothing runs twice" is read from what they saw:
every (saga, step) arrives under exactly one key, and the journal finishes each saga once.
The harness runs 10 s Leases renewed every 2 s (the defaults are 15 s / 5 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from harness import stack
from harness.isolated import chain, journal_integrity
from harness.operator import OperatorProcess, wait_members
from harness.participants import Fail, ParticipantServer, Respond, Stall
from harness.proxy import Proxy
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster
logger = logging.getLogger(__name__)


def expected(name: str) -> str:
    return "Compensated" if name.endswith("7") else "Succeeded"


def script(shop: ParticipantServer, names: list[str], *, stall: float = 0.0) -> None:
    then = Respond()
    for path in ("/a", "/b", "/c", "/a/undo", "/b/undo"):
        shop.on(path, Stall(stall, then=then) if stall else then)
    for name in names:
        if expected(name) == "Compensated":
            shop.on("/c", Fail(400), saga=name)


async def start_all(own_sagas: Sagas, names: list[str]) -> None:
    for name in names:
        await own_sagas.start(name, {"definitionRef": {"name": "chain"}})


async def cut_off_midway(
    healthy: OperatorProcess,
    cut: OperatorProcess,
    proxy: Proxy,
    own_sagas: Sagas,
    shop: ParticipantServer,
    names: list[str],
) -> dict[str, str]:
    """Both replicas run the sagas; ``cut`` loses what ``proxy`` relays midway, and the sagas
    must all finish while it is still cut off: their phases."""
    # One after the other: two operators migrating a fresh database at once can race
    # (CREATE TYPE of the migrations table); it is migrated once the first is live.
    await asyncio.to_thread(healthy.start)
    await asyncio.to_thread(cut.start)
    await wait_members([healthy, cut], 2, within=30)
    await own_sagas.define("chain", chain(shop))
    await start_all(own_sagas, names)
    await shop.wait_for_requests("/a", 10, within=60)

    proxy.cut()
    await wait_members([healthy], 1, within=30)
    return await own_sagas.wait_all(names, within=120)


async def check_once(
    shop: ParticipantServer, database: stack.Postgres, phases: dict[str, str]
) -> None:
    for name, phase in phases.items():
        assert phase == expected(name), name
        requests = shop.requests(saga=name)
        keys_per_step: dict[str, set[str | None]] = {}
        for request in requests:
            keys_per_step.setdefault(request.path, set()).add(request.idempotency_key)
        assert all(len(keys) == 1 for keys in keys_per_step.values()), (name, keys_per_step)
    journals = await journal_integrity(database.url)
    assert set(journals) == set(phases)
    for name, types in journals.items():
        assert types["SagaFinished"] == 1, name
        assert types["StepSucceeded"] <= 3, name


async def test_three_replicas_share_the_sagas_and_survive_a_kill_9(
    operators: Any, own_sagas: Sagas, shop: ParticipantServer, database: stack.Postgres
) -> None:
    first_wave = [f"w1-{i}" for i in range(150)]
    second_wave = [f"w2-{i}" for i in range(150)]
    script(shop, first_wave + second_wave)
    replicas: list[OperatorProcess] = [operators() for _ in range(3)]
    await asyncio.to_thread(replicas[0].start)  # it migrates the fresh database
    await asyncio.gather(*(asyncio.to_thread(r.start) for r in replicas[1:]))
    await wait_members(replicas, 3, within=30)
    await own_sagas.define("chain", chain(shop))

    await start_all(own_sagas, first_wave)
    phases = await own_sagas.wait_all(first_wave, within=180)
    shares = [await asyncio.to_thread(r.metric, "sagaz_sagas_finished_total") for r in replicas]
    logger.info("sagas finished per replica: %s", shares)
    assert sum(shares) == len(first_wave)
    assert all(0 < share <= 0.7 * len(first_wave) for share in shares), shares

    # The second wave is slow enough to be caught mid-run by the kill.
    script(shop, second_wave, stall=0.3)
    await start_all(own_sagas, second_wave)
    await shop.wait_for_requests("/b", 20, within=60)
    killed_at = time.monotonic()
    replicas[0].kill()
    await wait_members(replicas[1:], 2, within=30)
    noticed = time.monotonic() - killed_at
    phases |= await own_sagas.wait_all(second_wave, within=180)
    logger.info(
        "kill -9: the others saw it gone after %.1fs; every saga finished %.1fs after the kill",
        noticed,
        time.monotonic() - killed_at,
    )

    await check_once(shop, database, phases)


async def test_scaling_1_to_3_to_2_while_sagas_run_loses_and_repeats_nothing(
    operators: Any, own_sagas: Sagas, shop: ParticipantServer, database: stack.Postgres
) -> None:
    names = [f"scale-{i}" for i in range(90)]
    # Each step takes 3 s, so the sagas outlast the replicas' start-up (a few seconds each):
    # with shorter steps a fast first replica finished them all before the others joined.
    script(shop, names, stall=3.0)
    replicas: list[OperatorProcess] = [operators() for _ in range(3)]
    await asyncio.to_thread(replicas[0].start)
    await own_sagas.define("chain", chain(shop))
    await start_all(own_sagas, names)
    await shop.wait_for_requests("/a", 15, within=60)

    await asyncio.gather(*(asyncio.to_thread(r.start) for r in replicas[1:]))
    await wait_members(replicas, 3, within=30)
    await shop.wait_for_requests("/b", 30, within=60)
    await asyncio.to_thread(replicas[2].stop)  # a clean stop: its Lease goes at once
    await wait_members(replicas[:2], 2, within=30)
    phases = await own_sagas.wait_all(names, within=180)

    await check_once(shop, database, phases)
    newcomer = await asyncio.to_thread(replicas[1].metric, "sagaz_sagas_finished_total")
    assert newcomer > 0  # the replica that joined took a share


async def test_a_replica_cut_from_the_database_gives_its_sagas_up(
    operators: Any, own_sagas: Sagas, shop: ParticipantServer, database: stack.Postgres
) -> None:
    names = [f"nodb-{i}" for i in range(40)]
    script(shop, names, stall=0.3)
    url = urllib.parse.urlsplit(database.url)
    async with Proxy(url.hostname or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url._replace(netloc=url.netloc.replace(f":{url.port}", f":{proxy.port}"))
        healthy: OperatorProcess = operators()
        cut: OperatorProcess = operators(SAGAZ_DATABASE_URL=proxied.geturl())
        phases = await cut_off_midway(healthy, cut, proxy, own_sagas, shop, names)

    assert cut.process is not None
    assert cut.process.poll() is None
    await check_once(shop, database, phases)


async def test_a_replica_cut_from_the_api_server_gives_its_sagas_up(
    operators: Any,
    own_sagas: Sagas,
    shop: ParticipantServer,
    database: stack.Postgres,
    cluster: stack.Cluster,
    tmp_path: Path,
) -> None:
    names = [f"noapi-{i}" for i in range(40)]
    script(shop, names, stall=0.3)
    config = cluster.kubeconfig.read_text()
    server = next(
        line.split("server:")[1].strip() for line in config.splitlines() if "server:" in line
    )
    api = urllib.parse.urlsplit(server)
    async with Proxy(api.hostname or "127.0.0.1", api.port or 443) as proxy:
        kubeconfig = tmp_path / "proxied.kubeconfig"
        kubeconfig.write_text(
            config.replace(server, server.replace(f":{api.port}", f":{proxy.port}"))
        )
        healthy: OperatorProcess = operators()
        cut: OperatorProcess = operators(KUBECONFIG=str(kubeconfig))
        phases = await cut_off_midway(healthy, cut, proxy, own_sagas, shop, names)

    assert cut.process is not None
    assert cut.process.poll() is None
    await check_once(shop, database, phases)
