"""Scale-out: the same workload run by 1, 2 and 3 operator replicas, total CPU per saga.

For each replica count: a fresh namespace, that many operator processes serving it (each with
its own replica id and member Lease, ``services/membership.py``), started and seen by one
another before the N diamond Sagas are created at once. It reports the sum of the replicas'
CPU time per saga and the sagas/s from the first create to the last terminal phase. Replicas
divide the sagas, so the total CPU per saga should stay near the single replica's (the target
is at most 1.3x with three); what each still pays for sagas it does not own is decoding their
watch events. Throughput on a small shared machine need not grow: the replicas share its
cores with the apiserver, PostgreSQL and the participant.
"""

from __future__ import annotations

import asyncio
import time

from bench import procs
from bench.systems.operator import Operator, Watcher
from harness.operator import OperatorProcess


async def _members(processes: list[OperatorProcess], count: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        seen = [await asyncio.to_thread(p.metric, "sagaz_members_seen") for p in processes]
        if all(s == count for s in seen):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"replicas saw {seen} members, not {count} each")
        await asyncio.sleep(0.5)


async def one(operator: Operator, *, replicas: int, n: int) -> tuple[float, float, int]:
    """CPU seconds per saga (all replicas), sagas/s, and how many finished."""
    namespace = await operator.namespace()
    processes = [operator.process(namespace) for _ in range(replicas)]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes))
        await _members(processes, replicas)
        await operator.define(namespace)
        watcher = Watcher(operator.kube, namespace)
        await watcher.start()
        pids = [p.process.pid for p in processes if p.process is not None]
        before = sum(procs.usage(pid).cpu_seconds for pid in pids)
        started = time.monotonic()
        await operator.create(
            namespace, [f"saga-{i}" for i in range(n)], {"definitionRef": {"name": "diamond"}}
        )
        await watcher.wait(n)
        after = sum(procs.usage(pid).cpu_seconds for pid in pids)
        finished = len(watcher.finished)
        last = max(watcher.finished.values(), default=started)
        await watcher.stop()
    finally:
        for process in processes:
            process.stop()
    return (after - before) / n, finished / max(last - started, 1e-9), finished


async def replicas(operator: Operator, *, n: int, counts: tuple[int, ...] = (1, 2, 3)) -> list[str]:
    lines = [
        f"{n} diamond Sagas started at once, served by 1, 2 and 3 operator replicas "
        "(hack/benchmarks/bench/replicas.py); CPU is the sum over the replicas.",
        "",
        "| replicas | operator CPU per saga (total) | x one replica | sagas/s | finished |",
        "|---:|---:|---:|---:|---:|",
    ]
    single: float | None = None
    for count in counts:
        cpu, rate, finished = await one(operator, replicas=count, n=n)
        single = single if single is not None else cpu
        lines.append(
            f"| {count} | {cpu * 1000:,.1f} ms | {cpu / single:.2f} | {rate:,.1f} "
            f"| {finished}/{n} |"
        )
    return lines
