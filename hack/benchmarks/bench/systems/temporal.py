"""Temporal: its dev server (SQLite in a file) and the ``temporalio`` SDK's worker.

The server is the Temporal CLI's ``server start-dev --headless --db-filename <file>``, built
once per machine by hack/temporal.sh: persistent, as the operator's PostgreSQL journal is.
The worker runs in the bench's process with the SDK's defaults (sandboxed workflow runner,
100 concurrent activities); the workflow is ``temporal_workflow.Diamond``, the only activity
POSTs with aiohttp. A saga is "done" when its workflow's result arrives at the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from bench import clients
from bench.figures import Run
from bench.systems.temporal_workflow import CallArgs, Diamond, DiamondArgs
from bench.workload import Call, StepFailedError, Variant, path
from harness import stack

TASK_QUEUE = "bench-diamond"


class Temporal:
    name = "Temporal (dev server, SQLite file)"

    def __init__(self, *, binary: Path, workdir: Path, participant_url: str) -> None:
        self._binary, self._workdir, self._participant = binary, workdir, participant_url
        self._server: subprocess.Popen[bytes] | None = None
        self._client: Client | None = None
        self._worker: Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._http: clients.AiohttpPoster | None = None

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        command = [str(self._binary), "server", "start-dev", "--headless"]
        command += ["--db-filename", str(self._workdir / "temporal.db"), "--ip", "127.0.0.1"]
        command += ["--port", str(port), "--http-port", str(stack.free_port())]
        command += ["--metrics-port", str(stack.free_port()), "--log-level", "warn"]
        with (self._workdir / "temporal.log").open("ab") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        # The SDK logs every failed activity with its traceback; d fails by design here.
        logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
        port = stack.free_port()
        self._server = self._spawn(port)
        await asyncio.to_thread(stack.wait_until_listening, port, self._server, within=120)
        self._client = await _connect(f"127.0.0.1:{port}")
        self._http = clients.AiohttpPoster()
        self._worker = Worker(
            self._client, task_queue=TASK_QUEUE, workflows=[Diamond], activities=[self._call]
        )
        self._worker_task = asyncio.create_task(self._worker.run())

    @property
    def server_pid(self) -> int | None:
        return None if self._server is None else self._server.pid

    async def close(self) -> None:
        # Bounded: an interrupted run leaves workflows in flight, which shutdown would await.
        if self._worker is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._worker.shutdown(), 20)
        if self._worker_task is not None:
            self._worker_task.cancel()
            await asyncio.gather(self._worker_task, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._server is not None:
            stack.stop_process(self._server)

    @activity.defn(name="call")
    async def _call(self, args: CallArgs) -> None:
        assert self._http is not None
        call = Call(
            args.participant + path(args.step, args.purpose), args.saga, args.step, args.purpose
        )
        try:
            await self._http.post(call)
        except StepFailedError as error:
            raise ApplicationError(str(error), non_retryable=not error.retryable) from error

    async def run(self, *, n: int, variant: Variant) -> Run:
        assert self._client is not None
        client = self._client
        batch = uuid.uuid4().hex[:8]
        run = Run(system=self.name, variant=variant, n=n, started=time.monotonic())

        async def one(index: int) -> None:
            saga = f"temporal-{batch}-{index}"
            handle = await client.start_workflow(
                Diamond.run,
                DiamondArgs(self._participant, saga),
                id=saga,
                task_queue=TASK_QUEUE,
                execution_timeout=timedelta(minutes=10),
            )
            run.outcomes[saga] = await handle.result()
            run.finished[saga] = time.monotonic()

        await asyncio.gather(*(one(i) for i in range(n)))
        return run


async def _connect(target: str, *, within: float = 60) -> Client:
    deadline = time.monotonic() + within
    while True:
        try:
            return await Client.connect(target)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
