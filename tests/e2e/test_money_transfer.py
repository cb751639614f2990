"""examples/money-transfer: money is conserved through faults, duplicates and kill -9.

The bank (examples/money-transfer/bank.py, on sagaz_participant) keeps accounts in a
PostgreSQL of its own; every request moves money between a customer and ``in-transit`` in one
transaction, so the sum of the balances must be the same at every instant. Each test runs an
operator of its own in an ``e2e-own-*`` namespace (the session's operator leaves those alone).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from kubernetes.client import ApiClient

from harness import crds, kube, stack
from harness.examples import EXAMPLES, ParticipantProcess, load
from harness.operator import OperatorProcess
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster

EXAMPLE = EXAMPLES / "money-transfer"
DEMO_ADDRESS = "127.0.0.1:18081"


@pytest.fixture
def database() -> Iterator[stack.Postgres]:
    with stack.postgres(f"money-{uuid.uuid4().hex[:6]}") as instance:
        yield instance


@pytest.fixture
def own_sagas(k8s: ApiClient) -> Iterator[Sagas]:
    crds.install(k8s)
    with kube.namespace(k8s, prefix="e2e-own") as name:
        yield Sagas(k8s, name)


@pytest.fixture
def operator(
    cluster: stack.Cluster, database: stack.Postgres, own_sagas: Sagas, tmp_path: Path
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        kubeconfig=cluster.kubeconfig,
        database_url=database.url,
        namespaces=[own_sagas.namespace],
        log=tmp_path / "operator.log",
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def bank(database: stack.Postgres, log: Path, accounts: dict[str, int], *extra: str) -> Any:
    listed = ",".join(f"{name}={balance}" for name, balance in accounts.items())
    args = ["--database-url", database.url, "serve", "--accounts", listed, *extra]
    return ParticipantProcess(EXAMPLE / "bank.py", args, log=log)


@pytest.fixture
async def ledger(database: stack.Postgres) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database.url)
    yield conn
    await conn.close()


async def balances(conn: asyncpg.Connection) -> dict[str, int]:
    return {
        r["id"]: r["balance"] for r in await conn.fetch("SELECT id, balance FROM bank_accounts")
    }


async def define(sagas: Sagas, address: str, **defaults: Any) -> None:
    definition = load(EXAMPLE / "definition.yaml", address=address, demo_address=DEMO_ADDRESS)
    definition["spec"]["defaults"].update(defaults)
    await sagas.define(definition["metadata"]["name"], definition["spec"])


async def test_the_three_example_transfers(
    operator: OperatorProcess,
    own_sagas: Sagas,
    database: stack.Postgres,
    ledger: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    participant = bank(database, tmp_path / "bank.log", {"alice": 1000, "bob": 500, "carol": 0})
    participant.start()
    try:
        await define(own_sagas, participant.address)
        files = ["transfer-ok", "transfer-insufficient", "transfer-unknown-account"]
        for file in files:
            saga = load(EXAMPLE / f"{file}.yaml", address="", demo_address="")
            await own_sagas.start(saga["metadata"]["name"], saga["spec"])
        phases = await own_sagas.wait_all(files, within=120)
    finally:
        participant.stop()

    assert phases == {
        "transfer-ok": "Succeeded",
        "transfer-insufficient": "Compensated",
        "transfer-unknown-account": "Compensated",
    }
    steps = {
        name: [(s["name"], s["phase"]) for s in (await own_sagas.get(name))["status"]["steps"]]
        for name in files
    }
    assert steps["transfer-insufficient"] == [("debit", "Failed"), ("credit", "Skipped")]
    assert steps["transfer-unknown-account"] == [("debit", "Compensated"), ("credit", "Failed")]
    assert await balances(ledger) == {"alice": 700, "bob": 800, "carol": 0, "in-transit": 0}


async def test_money_is_conserved_through_faults_and_kill_9(
    operator: OperatorProcess,
    own_sagas: Sagas,
    database: stack.Postgres,
    ledger: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    rng = random.Random(20261201)
    accounts = {f"acct-{i}": 1000 for i in range(6)}
    total = sum(accounts.values())
    transfers: dict[str, tuple[str, str, int]] = {}
    for n in range(40):
        payer, payee = rng.sample(sorted(accounts), 2)
        if n % 10 == 3:
            payee = "ghost"  # unknown: the credit fails, the debit is refunded
        if n % 10 == 7:
            payer = "ghost"  # unknown: the debit fails, nothing to undo
        transfers[f"transfer-{n}"] = (payer, payee, rng.randint(1, 600))
    log = tmp_path / "bank.log"
    participant = bank(database, log, accounts, "--faults", "0.3", "--slow-seconds", "3")
    participant.start()

    sums: list[int] = []
    sampling = asyncio.Event()

    async def sample() -> None:
        conn = await asyncpg.connect(database.url)
        try:
            while not sampling.is_set():
                value = await conn.fetchval("SELECT coalesce(sum(balance), 0) FROM bank_accounts")
                sums.append(int(value))
                await asyncio.sleep(0.05)  # a sample every 50 ms: an observation, not a wait
        finally:
            await conn.close()

    async def entries() -> int:
        count: int = await ledger.fetchval("SELECT count(*) FROM bank_entries")
        return count

    async def until_entries(n: int) -> None:
        async with asyncio.timeout(180):
            while await entries() < n:  # noqa: ASYNC110 - the bank's rows are not an event
                await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    try:
        await define(own_sagas, participant.address, timeoutSeconds=2)
        for name, (payer, payee, amount) in transfers.items():
            spec = {"definitionRef": {"name": "money-transfer"}}
            await own_sagas.start(
                name, {**spec, "input": {"from": payer, "to": payee, "amount": amount}}
            )
        await until_entries(10)
        operator.kill()
        await asyncio.to_thread(operator.start)
        await until_entries(30)
        participant.kill()  # the bank too, in the middle of whatever it was doing
        await asyncio.to_thread(participant.start)
        phases = await own_sagas.wait_all(sorted(transfers), within=400)
    finally:
        sampling.set()
        await sampler
        participant.stop()

    assert set(sums) == {total}, "the sum of the balances changed at some instant"
    assert Counter(phases.values()).keys() <= {"Succeeded", "Compensated"}, phases
    for name, (payer, payee, _) in transfers.items():
        if "ghost" in (payer, payee):
            assert phases[name] == "Compensated", name
    expected = {**accounts, "in-transit": 0}
    for name, (payer, payee, amount) in transfers.items():
        if phases[name] == "Succeeded":
            expected[payer] -= amount
            expected[payee] += amount
    assert await balances(ledger) == expected
    uids = {(await own_sagas.get(name))["metadata"]["uid"]: name for name in transfers}
    net = await ledger.fetch(
        "SELECT transfer, account, sum(amount) AS net FROM bank_entries"
        " GROUP BY transfer, account HAVING sum(amount) <> 0"
    )
    moved = {(uids[r["transfer"]], r["account"]): r["net"] for r in net}
    assert moved == {
        **{(n, t[0]): -t[2] for n, t in transfers.items() if phases[n] == "Succeeded"},
        **{(n, t[1]): t[2] for n, t in transfers.items() if phases[n] == "Succeeded"},
    }, "a compensated transfer left money moved, or a succeeded one moved it twice"
    text = log.read_text()
    assert "(replayed)" in text  # retries of applied requests got the stored answer
    assert "-> 503" in text  # and faults really happened
