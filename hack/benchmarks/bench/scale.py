"""Memory with many Sagas in the cluster: the operator's RSS and etcd's size.

The operator runs about 15 diamond sagas/s, so 10,000 real runs would take over ten minutes;
instead the scenario uses the two cheapest ways a Saga exists for the operator, both real:

- **finished**: Sagas naming a SagaDefinition that does not exist end ``Failed`` at once
  (journaled as rejected, status written; their daemon exits);
- **running**: Sagas created with ``spec.suspend: true`` are started, journaled and reach
  ``Suspended``; their daemon stays, waiting for a resume, as a long-running saga's does.

It measures the operator's RSS with no Sagas, then after all of them reached their phase
(or the deadline passed: then it says how many had), and etcd's database size before and
after (``etcd_mvcc_db_total_size_in_use_in_bytes`` from etcd's /metrics: the file itself,
``..._size_in_bytes``, never shrinks without a defragmentation, so after earlier runs it hides
what the Sagas add).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import aiohttp

from bench import procs
from bench.systems.operator import Operator, Watcher


def etcd_port() -> str | None:
    """etcd's client port, if the cluster is the local one (hack/cluster.sh's ports file)."""
    state = Path(os.environ.get("SAGAZ_STATE", Path(__file__).resolve().parents[3] / ".dev"))
    ports = state / "cluster.ports"
    if os.environ.get("SAGAZ_TEST_KUBECONFIG") or not ports.exists():
        return None
    return dict(line.split("=", 1) for line in ports.read_text().split())["ETCD_PORT"]


async def etcd_db_bytes(port: str | None) -> float | None:
    """etcd's database in use (``etcd_mvcc_db_total_size_in_use_in_bytes``), if reachable."""
    if port is None:
        return None
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        for line in (await answer.text()).splitlines():
            if line.startswith("etcd_mvcc_db_total_size_in_use_in_bytes "):
                return float(line.split()[1])
    return None


def _mib(value: float | None) -> str:
    return "unknown" if value is None else f"{value / 2**20:,.1f} MiB"


async def scale(operator: Operator, *, count: int, running: int, within: float) -> list[str]:
    async with operator.namespace() as namespace:
        return await _scale(operator, namespace, count=count, running=running, within=within)


async def _scale(
    operator: Operator, namespace: str, *, count: int, running: int, within: float
) -> list[str]:
    port = etcd_port()
    etcd_before = await etcd_db_bytes(port)
    process = operator.operator(namespace)
    assert process.process is not None
    pid = process.process.pid
    try:
        await operator.define(namespace)
        idle = procs.usage(pid)
        watcher = Watcher(operator.kube, namespace, also=("Suspended",))
        await watcher.start()
        started = time.monotonic()
        suspended = [f"running-{i}" for i in range(running)]
        finished = [f"finished-{i}" for i in range(count - running)]
        await operator.create(
            namespace, suspended, {"definitionRef": {"name": "diamond"}, "suspend": True}
        )
        await operator.create(namespace, finished, {"definitionRef": {"name": "missing"}})
        created = time.monotonic() - started
        await watcher.wait(count, stall=60, within=within)
        settled = time.monotonic() - started
        loaded = procs.usage(pid)
        await watcher.stop()
    finally:
        process.stop()
    etcd_after = await etcd_db_bytes(port)
    phases: dict[str, int] = {}
    for phase in watcher.phases.values():
        phases[phase] = phases.get(phase, 0) + 1
    reached = ", ".join(f"{n:,} {phase}" for phase, n in sorted(phases.items()))
    per_saga = (loaded.rss_bytes - idle.rss_bytes) / max(1, len(watcher.phases))
    return [
        f"- {count:,} Sagas in one namespace: {running:,} created with `suspend: true` "
        f"(running: journaled, daemon waiting) and {count - running:,} naming a missing "
        "SagaDefinition (finished: `Failed` at once).",
        f"- created in {created:.1f} s (concurrent POSTs); reached their phase after "
        f"{settled:.1f} s: {reached or 'none'}"
        + (
            ""
            if len(watcher.phases) >= count
            else " (stopped waiting: no progress, or the deadline)"
        ),
        f"- operator RSS: {_mib(idle.rss_bytes)} with no Sagas, {_mib(loaded.rss_bytes)} with "
        f"them ({per_saga / 1024:,.1f} KiB per Saga); peak {_mib(loaded.peak_rss_bytes)}; "
        f"CPU {loaded.cpu_seconds - idle.cpu_seconds:,.1f} s",
        f"- etcd database in use: {_mib(etcd_before)} before, {_mib(etcd_after)} after "
        "(the cluster's whole database: etcd keeps deleted keys until it is compacted)",
    ]
