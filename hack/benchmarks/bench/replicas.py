"""Scale-out: the same workload run by 1, 2 and 3 operator replicas, total CPU per saga.

For each replica count: a fresh namespace, that many operator processes serving it (each with
its own replica id and member Lease, ``services/membership.py``), started and seen by one
another before the N diamond Sagas are created at once. It reports the sum of the replicas'
CPU time per saga and the sagas/s from the first create to the last terminal phase. Replicas
divide the sagas, so the total CPU per saga should stay near the single replica's (the target
is at most 1.3x with three); what each still pays for sagas it does not own is decoding their
watch events. Throughput on a small shared machine need not grow: the replicas share its
cores with the apiserver, PostgreSQL and the participant.

One run of each count is noisy on a shared 2-core machine (the same count measured twice
differed by a third): the counts are run in turn for a few rounds and the medians reported,
every round's figure shown. Each run's namespace is deleted before the next.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench import kube, procs
from bench.systems.operator import Operator, Watcher
from harness.operator import wait_members


async def one(operator: Operator, *, replicas: int, n: int) -> dict[str, float]:
    """CPU seconds per saga (all replicas, and the busiest one's share), apiserver writes per
    saga, sagas/s, and how many finished."""
    async with operator.namespace() as namespace:
        return await _one(operator, namespace, replicas=replicas, n=n)


async def _one(operator: Operator, namespace: str, *, replicas: int, n: int) -> dict[str, float]:
    processes = [operator.process(namespace) for _ in range(replicas)]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes))
        await wait_members(processes, replicas, within=60)
        await operator.define(namespace)
        watcher = Watcher(operator.kube, namespace)
        await watcher.start()
        pids = [p.process.pid for p in processes if p.process is not None]
        before = [procs.usage(pid).cpu_seconds for pid in pids]
        before_writes = kube.request_totals(await operator.kube.text("/metrics"))
        started = time.monotonic()
        await operator.create(
            namespace, [f"saga-{i}" for i in range(n)], {"definitionRef": {"name": "diamond"}}
        )
        await watcher.wait(n)
        used = [procs.usage(pid).cpu_seconds - cpu for pid, cpu in zip(pids, before, strict=True)]
        writes = kube.writes_of_others(
            before_writes, kube.request_totals(await operator.kube.text("/metrics")), created=n
        )
        finished = len(watcher.finished)
        last = max(watcher.finished.values(), default=started)
        await watcher.stop()
    finally:
        for process in processes:
            process.stop()
    return {
        "cpu": sum(used) / n,
        "busiest": max(used) / max(sum(used), 1e-9),
        "writes": sum(writes.values()) / n,
        "rate": finished / max(last - started, 1e-9),
        "finished": finished,
        **kube.per_saga(writes, n),
    }


async def replicas(
    operator: Operator, *, n: int, counts: tuple[int, ...] = (1, 2, 3), rounds: int = 3
) -> list[str]:
    lines = [
        f"{n} diamond Sagas started at once, served by 1, 2 and 3 operator replicas "
        f"(hack/benchmarks/bench/replicas.py), {rounds} rounds of 1, 2, 3 in turn; "
        "each figure is the median over the rounds. CPU is the sum over the replicas, the "
        "busiest replica's share of it next to it.",
        "",
        "| replicas | operator CPU per saga (total) | x one replica | per round | busiest "
        "replica | apiserver writes / saga | sagas/s | finished |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    runs: dict[int, list[dict[str, float]]] = {count: [] for count in counts}
    for _ in range(rounds):
        for count in counts:
            runs[count].append(await one(operator, replicas=count, n=n))
    single = statistics.median(run["cpu"] for run in runs[counts[0]])
    for count in counts:
        cpu = [run["cpu"] for run in runs[count]]

        def median(key: str, count: int = count) -> float:
            return statistics.median(run[key] for run in runs[count])

        lines.append(
            f"| {count} | {statistics.median(cpu) * 1000:,.1f} ms "
            f"| {statistics.median(cpu) / single:.2f} "
            f"| {' / '.join(f'{c * 1000:.1f}' for c in cpu)} "
            f"| {median('busiest'):.0%} | {median('writes'):.1f} | {median('rate'):,.1f} "
            f"| {min(run['finished'] for run in runs[count]):.0f}/{n} |"
        )
    lines += ["", "Apiserver writes per saga by verb and resource (the last round):", ""]
    for count in counts:
        lines.append(f"- {count} replica{'s' if count > 1 else ''}: {kube.worded(runs[count][-1])}")
    return lines
