"""Fixtures for tests that run operators of their own, isolated from the session's.

Each test gets a PostgreSQL of its own and an ``e2e-own-*`` namespace the session's operator
leaves alone, and starts as many operator processes (``operators(**env)``) as it needs; they
are stopped when the test ends. ``chain`` and ``journal_integrity`` are the saga and the
journal check the durability and outage tests share. Registered by ``tests/conftest.py``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from kubernetes.client import ApiClient

from harness import crds, kube, stack
from harness.operator import OperatorProcess
from harness.participants import ParticipantServer
from harness.sagas import Sagas

FAST = {"maxAttempts": 3, "backoff": {"initialSeconds": 0.2, "factor": 2, "maxSeconds": 1}}


@pytest.fixture
def database() -> Iterator[stack.Postgres]:
    with stack.postgres(f"durability-{uuid.uuid4().hex[:6]}") as instance:
        yield instance


@pytest.fixture
def own_namespace(k8s: ApiClient) -> Iterator[str]:
    crds.install(k8s)
    with kube.namespace(k8s, prefix="e2e-own") as name:
        yield name


@pytest.fixture
def own_sagas(k8s: ApiClient, own_namespace: str) -> Sagas:
    return Sagas(k8s, own_namespace)


@pytest.fixture
def operators(
    cluster: stack.Cluster, database: stack.Postgres, own_namespace: str, tmp_path: Path
) -> Iterator[list[OperatorProcess]]:
    started: list[OperatorProcess] = []

    def make(*arguments: str, **env: str) -> OperatorProcess:
        process = OperatorProcess(
            kubeconfig=cluster.kubeconfig,
            database_url=database.url,
            namespaces=[own_namespace],
            log=tmp_path / f"operator-{len(started)}.log",
            env=env,
            arguments=list(arguments),
        )
        started.append(process)
        return process

    yield make  # type: ignore[misc]
    for process in started:
        process.stop()


@pytest.fixture
async def shop() -> AsyncIterator[ParticipantServer]:
    async with ParticipantServer() as server:
        yield server


def chain(server: ParticipantServer) -> dict[str, Any]:
    """a -> b -> c, each with a compensation but c."""

    def step(name: str, *after: str, undo: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "dependsOn": list(after),
            "action": {"http": {"url": server.url(f"/{name}")}},
        }
        if undo:
            body["compensation"] = {"http": {"url": server.url(f"/{name}/undo")}}
        return body

    return {
        "defaults": {"timeoutSeconds": 10, "retry": FAST},
        "compensationRetry": FAST,
        "steps": [step("a"), step("b", "a"), step("c", "b", undo=False)],
    }


async def journal_integrity(url: str) -> dict[str, Counter[str]]:
    """Per saga name, the journal's event types; asserts seq and outbox invariants."""
    conn = await asyncpg.connect(url)
    try:
        sagas = await conn.fetch("SELECT uid, name, version FROM sagaz_sagas")
        result: dict[str, Counter[str]] = {}
        for saga in sagas:
            rows = await conn.fetch(
                "SELECT seq, event_type FROM sagaz_journal WHERE saga_uid = $1 ORDER BY seq",
                saga["uid"],
            )
            assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1)), "journal gap"
            assert saga["version"] == len(rows)
            outbox = await conn.fetch(
                """SELECT (headers->>'sequence')::int AS seq FROM sagaz_outbox
                   WHERE aggregate_id = $1 ORDER BY created_at, (headers->>'sequence')::int""",
                str(saga["uid"]),
            )
            assert [r["seq"] for r in outbox] == [r["seq"] for r in rows], "outbox != journal"
            result[saga["name"]] = Counter(r["event_type"] for r in rows)
        return result
    finally:
        await conn.close()
