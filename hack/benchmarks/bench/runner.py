"""Drive the whole bench: the stack, the participant and its ceiling, every system at every
N and variant, the memory scenario, the relay; then write the report.

Every system runs against the same participant process; before each run the participant is
reset to the variant's behaviour, after it its records are collected. A failure of one
system is recorded as a note in the report and the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import logging
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from bench import apiserver_profile, profile, relay, replicas, scale, table
from bench import participant as participants
from bench.figures import figures
from bench.systems import System
from bench.systems.floor import Floor
from bench.systems.operator import Operator
from bench.systems.sagaz_lib import SagazLibrary
from bench.systems.temporal import Temporal
from bench.workload import Variant
from harness import stack

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "docs" / "benchmarks" / "results.md"
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
SYSTEMS = ("operator", "temporal", "sagaz", "floor-aiohttp", "floor-httpx")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--quick", action="store_true", help="N = 1, 100; smaller scenarios")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--variants", nargs="+", default=[v.value for v in Variant])
    parser.add_argument("--scale", type=int, default=10_000, help="Sagas in the memory scenario")
    parser.add_argument(
        "--replicas", type=int, default=1000, help="Sagas in the 1/2/3-replica scenario (0: off)"
    )
    parser.add_argument(
        "--replica-rounds", type=int, default=3, help="rounds of 1, 2, 3 replicas (medians)"
    )
    parser.add_argument("--relay-events", type=int, default=100_000)
    parser.add_argument("--relay-seconds", type=float, default=10.0)
    parser.add_argument(
        "--profile",
        nargs="?",
        const=Variant.INSTANT.value,
        choices=[v.value for v in Variant],
        metavar="VARIANT",
        help="py-spy the operator (and pprof the API server) at max N of VARIANT (instant)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--readme", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--command", default="make bench", help="shown in the report")
    args = parser.parse_args(argv)
    if args.quick:
        args.n = [n for n in args.n if n <= 100] or [1]
        args.scale = min(args.scale, 1_000)
        args.replicas = min(args.replicas, 100)
        args.replica_rounds = 1
        args.relay_events = min(args.relay_events, 20_000)
        args.relay_seconds = min(args.relay_seconds, 5.0)
    return args


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        model = next(
            (ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), model
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({model}), {memory:.0f} GiB; load average at start {load}"


def _duration() -> str:
    """The whole run's wall time (hack/bench.sh stamps its start, before the local stack is
    started or reused) and the load at its end: whether others shared the machine meanwhile."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    started = os.environ.get("SAGAZ_BENCH_STARTED")
    if not started:
        return f"unknown (not run by hack/bench.sh); load average at the end {load}"
    minutes, seconds = divmod(round(time.time() - float(started)), 60)
    took = f"{minutes} min {seconds} s from `make bench` to the table"
    return f"{took}; load average at the end {load}"


def temporal_binary() -> Path:
    done = subprocess.run(
        [str(ROOT / "hack" / "temporal.sh"), "path"], capture_output=True, text=True, check=True
    )
    return Path(done.stdout.strip().splitlines()[-1])


async def bench(
    args: argparse.Namespace, cluster: stack.Cluster, database_url: str
) -> table.Report:
    workdir = Path(tempfile.mkdtemp(prefix="sagaz-bench-"))
    conn = await asyncpg.connect(database_url)
    try:
        postgres_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    dirty = (
        " (with uncommitted changes)"
        if _git("status", "--porcelain", "--untracked-files=no")
        else ""
    )
    report = table.Report(
        header=[
            ("date", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
            ("command", f"`{args.command}`"),
            ("machine", _machine()),
            ("git revision", _git("rev-parse", "--short", "HEAD") + dirty),
            (
                "versions",
                f"Python {platform.python_version()}, PostgreSQL {postgres_version}, "
                f"kopf {_version('kopf')}, aiohttp {_version('aiohttp')}, "
                f"httpx {_version('httpx')}, temporalio {_version('temporalio')}, "
                f"Temporal CLI {_temporal_version()}, sagaz {_version('sagaz')}",
            ),
        ]
    )
    part = participants.Participant(workdir / "participant.log")
    try:
        ceiling = await asyncio.to_thread(participants.ceiling, part)
        worded = (
            f"{ceiling.requests_per_s:,.0f} requests/s answered alone under 2 aiohttp "
            f"load-generator processes x 64 in flight (they share the cores with it); "
            f"{ceiling.cpu_per_request * 1e6:,.0f} µs of its CPU per request, i.e. "
            f"≈ {ceiling.per_core:,.0f} requests/s per core. The `participant CPU` column "
            "is its busy share of one core during each run: near 100 % it was the bottleneck"
        )
        report.header.append(("participant ceiling", worded))
        print(f"participant ceiling: {worded}", flush=True)
        operator = Operator(
            kubeconfig=cluster.kubeconfig,
            database_url=database_url,
            participant_url=part.url,
            workdir=workdir,
        )
        chosen: list[System] = []
        for name in args.systems:
            if name == "operator":
                chosen.append(operator)
            elif name == "temporal":
                chosen.append(
                    Temporal(binary=temporal_binary(), workdir=workdir, participant_url=part.url)
                )
            elif name == "sagaz":
                chosen.append(SagazLibrary(participant_url=part.url))
            else:
                client = name.removeprefix("floor-")
                chosen.append(
                    Floor(client=client, database_url=database_url, participant_url=part.url)
                )
        variants = [Variant(v) for v in args.variants]
        for system in chosen:
            await _measure(
                system, args=args, variants=variants, part=part, report=report, workdir=workdir
            )
        if "operator" in args.systems and args.scale:
            running = max(1, args.scale // 10)
            report.scale = await _scenario(
                operator,
                lambda: scale.scale(
                    operator, count=args.scale, running=running, within=60 + args.scale * 0.05
                ),
            )
        if "operator" in args.systems and args.replicas:
            # The instant participant: it answers as the last variant measured told it to.
            await part.reset(delay=0, failing=())
            report.replicas = await _scenario(
                operator,
                lambda: replicas.replicas(operator, n=args.replicas, rounds=args.replica_rounds),
            )
        if args.relay_events:
            try:
                report.relay = await asyncio.to_thread(
                    relay.relay, events=args.relay_events, seconds=args.relay_seconds
                )
            except Exception as error:
                report.relay = [f"failed: {error!r}"]
            print("\n".join(report.relay), flush=True)
    finally:
        part.stop()
    report.notes = notes(args) + report.notes
    report.header.append(("duration", _duration()))
    if args.profile and (workdir / "operator.pyspy").exists():
        batch = f"the {args.profile} variant, N={max(args.n)}"
        report.profile = profile.summarize(workdir / "operator.pyspy", batch=batch)
    if args.profile and (workdir / "operator.pprof").exists():
        report.apiserver_profile = apiserver_profile.summarize(workdir / "operator.pprof")
    print(f"(logs in {workdir})", flush=True)
    return report


async def _scenario(operator: Operator, measure: Callable[[], Awaitable[list[str]]]) -> list[str]:
    """One operator scenario's report lines (printed too), or its failure as a line."""
    await operator.start()
    try:
        lines = await measure()
    except Exception as error:
        lines = [f"failed: {error!r}"]
        traceback.print_exc()
    finally:
        await operator.close()
    print("\n".join(lines), flush=True)
    return lines


async def _measure(
    system: System,
    *,
    args: argparse.Namespace,
    variants: list[Variant],
    part: participants.Participant,
    report: table.Report,
    workdir: Path,
) -> None:
    print(f"\n== {system.name}", flush=True)
    try:
        await system.start()
        if not isinstance(system, Operator):  # a fresh operator process runs every batch
            await part.reset(delay=0, failing=())
            await system.run(n=min(20, max(args.n)), variant=Variant.INSTANT)  # warm-up
        for variant in variants:
            for n in args.n:
                if isinstance(system, Operator):
                    profiling = n == max(args.n) and variant.value == args.profile
                    system.profile = workdir / "operator.pyspy" if profiling else None
                await part.reset(delay=variant.delay, failing=variant.failing)
                started = time.monotonic()
                cpu = part.cpu_seconds()
                run = await system.run(n=n, variant=variant)
                busy = part.cpu_seconds() - cpu
                run.records = await part.records()
                elapsed = max(run.finished.values(), default=run.started) - run.started
                # /proc counts CPU in 10 ms ticks: meaningless for a batch shorter than 1 s.
                run.extra["participant_busy"] = busy / elapsed if elapsed >= 1 else math.nan
                result = figures(run)
                report.figures.append(result)
                report.notes += [
                    f"- {system.name}, {variant.value}, N={n}: {note}" for note in result.notes
                ]
                print(
                    f"  {variant.value:<8} N={n:<5} {result.sagas_per_s:8.1f} sagas/s  "
                    f"p50 {result.latency_p50 * 1000:8.1f} ms  wrong {result.wrong}  "
                    f"({time.monotonic() - started:.0f}s)",
                    flush=True,
                )
    except Exception as error:
        traceback.print_exc()
        report.notes.append(f"- {system.name} failed: {error!r}")
    finally:
        with contextlib.suppress(Exception):
            await system.close()


def _temporal_version() -> str:
    from_versions = (ROOT / "hack" / "versions.sh").read_text()
    for line in from_versions.splitlines():
        if line.startswith("TEMPORAL_CLI_VERSION="):
            return line.split("=", 1)[1].split()[0]
    return "unknown"


def notes(args: argparse.Namespace) -> list[str]:
    return [
        "- Every system runs the same diamond (a → b ∥ c → d, HTTP POST with a JSON body, "
        "compensations on a, b, c) against the same aiohttp participant process. Variants: "
        "`instant` (answers at once), `20ms` (every answer after 20 ms), `d-fails` (d answers "
        "400 for good, so b and c, then a are compensated: 7 requests per saga).",
        "- **Sagaz Operator**: a fresh `sagaz-operator` process per batch, one namespace, "
        "PostgreSQL journal, `SAGAZ_STATUS_INTERVAL=1` (the default), authenticated as in a "
        "pod by a ServiceAccount token (bound to `cluster-admin`). The N Sagas are created "
        "by N concurrent POSTs on one aiohttp session (100 connections) to the real "
        "apiserver; done = a watch saw `.status.phase` terminal. Apiserver writes exclude "
        "the bench's own N creates but include everything else written meanwhile (the "
        "controller manager, kwok, leases: a few per second on an idle cluster).",
        "- **Temporal**: `temporal server start-dev --headless --db-filename <file>` "
        "(SQLite in a file), worker in the bench's process with the SDK's defaults; the "
        "workflow runs in the default **sandboxed** runner: its module imports no HTTP client "
        "and calls the activity by name, the workload's constants come through "
        "`imports_passed_through`. Done = the workflow's result reached the client.",
        "- **sagaz library**: in memory, **not durable** (a crash loses running sagas); "
        "`max_retries=0`, its logging listener silenced.",
        "- **floor**: a bare asyncio loop, one PostgreSQL commit before and one after each "
        "call (asyncpg pool of 20), no engine; with aiohttp and with httpx (both pools 100).",
        "- sagas/s and steps/s: from the start of the batch to the last saga seen done. "
        "Saga latency: from the start of the batch (all N started at once) to that saga "
        "done. Step overhead: at the participant, a request's arrival minus the latest "
        "arrival of the requests it waited for (includes the participant's 20 ms in `20ms`). "
        "`wrong`: sagas missing, in the wrong phase, or with a missing or repeated request.",
        "- The machine may be shared: compare systems within one run, not across runs.",
    ]


def write(report: table.Report, *, output: Path, readme: bool, command: str) -> None:
    text = table.render(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print("\n" + text, flush=True)
    if not readme:
        return
    path = ROOT / "README.md"
    content = path.read_text()
    if README_START not in content:
        return
    head, _, rest = content.partition(README_START)
    _, _, tail = rest.partition(README_END)
    block = [
        README_START,
        f"Latest run ({dict(report.header)['date']}, {dict(report.header)['machine']}), made "
        f"by `{command}`; the full report with the operator's own costs, the memory "
        f"scenario and the relay is [{output.relative_to(ROOT)}]({output.relative_to(ROOT)}).",
        "",
        *table.comparison(report.figures),
        README_END,
    ]
    path.write_text(head + "\n".join(block) + tail)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that every finally stops what it started


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # The sagaz library configures the root logger at INFO, which would print every request.
    logging.basicConfig(level=logging.WARNING)
    for name in ("httpx", "httpcore", "sagaz", "temporalio.activity"):
        logging.getLogger(name).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    postgres = stack.Postgres(f"postgres-bench-{os.getpid()}")
    with stack.cluster() as cluster:
        database_url = postgres.start()
        try:
            report = asyncio.run(bench(args, cluster, database_url))
        finally:
            postgres.destroy()
    write(report, output=args.output, readme=args.readme, command=args.command)
    wrong = sum(f.wrong for f in report.figures)
    failed = [note for note in report.notes if " failed: " in note]
    failed += [
        line for line in report.scale + report.replicas + report.relay if line.startswith("failed:")
    ]
    if wrong or failed:
        print(f"bench: {wrong} wrong sagas, {len(failed)} failed systems", file=sys.stderr)
        return 1
    return 0
