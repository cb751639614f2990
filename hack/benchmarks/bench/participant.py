"""The participant every system calls: a small aiohttp server in a process of its own.

Python's ``http.server`` tops out near a few hundred requests/s here, below what the faster
systems need, so the participant is an aiohttp app with keep-alive; its ceiling is measured
in the same run (``ceiling``) and printed beside the results, so a reader can see it was not
the bottleneck. It records, for every request, the saga (``X-Saga-Name``), the path and the
arrival time on ``time.monotonic()`` -- CLOCK_MONOTONIC, one clock for every process of the
machine, so the runner can compare it with its own timestamps.

    python -m bench.participant --port 18090     # serve (the runner starts it)

Control endpoints: ``POST /_reset`` with ``{"delay": seconds, "failing": ["d"]}`` clears the
records and sets the behaviour; ``GET /_records`` returns ``[[saga, path, arrival], ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from bench import procs
from harness import stack


@dataclass
class _Behaviour:
    delay: float = 0.0
    failing: frozenset[str] = frozenset()
    records: list[tuple[str, str, float]] = field(default_factory=list)


def app() -> web.Application:
    behaviour = _Behaviour()

    async def step(request: web.Request) -> web.Response:
        arrived = time.monotonic()
        await request.read()
        behaviour.records.append((request.headers.get("X-Saga-Name", ""), request.path, arrived))
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        name = request.match_info["step"]
        if request.path == f"/{name}" and name in behaviour.failing:
            return web.json_response({"error": f"{name} refused"}, status=400)
        return web.json_response({"ok": True, "step": name})

    async def reset(request: web.Request) -> web.Response:
        settings = await request.json()
        behaviour.delay = float(settings.get("delay", 0.0))
        behaviour.failing = frozenset(settings.get("failing", ()))
        behaviour.records = []
        return web.json_response({})

    async def records(_: web.Request) -> web.Response:
        return web.Response(text=json.dumps(behaviour.records), content_type="application/json")

    application = web.Application()
    application.router.add_post("/_reset", reset)
    application.router.add_get("/_records", records)
    application.router.add_post("/{step}", step)
    application.router.add_post("/{step}/undo", step)
    return application


class Participant:
    """The participant process; ``url`` is its base URL."""

    def __init__(self, log: Path) -> None:
        self.port = stack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.participant", "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        stack.wait_until_listening(self.port, self.process, within=60)

    async def reset(self, *, delay: float, failing: tuple[str, ...]) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}/_reset", json={"delay": delay, "failing": list(failing)}) as r,
        ):
            r.raise_for_status()

    async def records(self) -> list[tuple[str, str, float]]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/_records") as answer:
            answer.raise_for_status()
            rows = await answer.json()
        return [(str(saga), str(path), float(at)) for saga, path, at in rows]

    def cpu_seconds(self) -> float:
        return procs.usage(self.process.pid).cpu_seconds

    def stop(self) -> None:
        stack.stop_process(self.process)


@dataclass(frozen=True)
class Ceiling:
    """The participant alone under load: what it answered, and what each answer cost it."""

    requests_per_s: float  # with the load generators competing for the same cores
    cpu_per_request: float  # seconds of the participant's own CPU per request

    @property
    def per_core(self) -> float:
        """Requests/s one core could answer at that cost: its ceiling on a quiet machine."""
        return 1 / self.cpu_per_request if self.cpu_per_request else float("inf")


def ceiling(
    participant: Participant, *, seconds: float = 3.0, clients: int = 2, concurrency: int = 64
) -> Ceiling:
    """Load the participant with ``clients`` generator processes (aiohttp, keep-alive), each
    with ``concurrency`` requests in flight, and read its CPU time from /proc around it. The
    rate is a lower bound of its ceiling (the generators share the cores with it); its CPU
    per request gives the ceiling of one core, whatever else runs on the machine."""
    command = [sys.executable, "-m", "bench.participant", "--load", participant.url]
    command += ["--seconds", str(seconds), "--concurrency", str(concurrency)]
    before = procs.usage(participant.process.pid).cpu_seconds
    loaders = [subprocess.Popen(command, stdout=subprocess.PIPE) for _ in range(clients)]
    total = 0
    for loader in loaders:
        out, _ = loader.communicate(timeout=seconds + 60)
        total += int(out.decode().split()[-1])
    cpu = procs.usage(participant.process.pid).cpu_seconds - before
    return Ceiling(requests_per_s=total / seconds, cpu_per_request=cpu / max(1, total))


async def _load(url: str, *, seconds: float, concurrency: int) -> int:
    done = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with http.post(f"{url}/a", json={"load": True}) as answer:
                    await answer.read()
                done += 1

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmark's participant")
    parser.add_argument("--port", type=int)
    parser.add_argument("--load", metavar="URL", help="be a load generator instead")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    if args.load:
        print(asyncio.run(_load(args.load, seconds=args.seconds, concurrency=args.concurrency)))
        return
    web.run_app(app(), host="127.0.0.1", port=args.port, backlog=4096, print=None)


if __name__ == "__main__":
    main()
