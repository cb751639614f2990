"""The Sagaz Operator: Sagas created through the real apiserver, run by one operator process.

Per run: a fresh namespace (deleted afterwards), a ``SagaDefinition`` of the diamond, and a
fresh operator process (``sagaz-operator --standalone --namespace <it>``, defaults but for the
metrics address) on the bench's own PostgreSQL. The N Sagas are created by N concurrent POSTs
on one aiohttp session (100 connections) to the apiserver; a saga is done when a watch on the
namespace's Sagas first shows its ``.status.phase`` terminal.

Around each run it reads the operator's CPU time and peak RSS from ``/proc``, the apiserver's
own ``apiserver_request_total`` (writes by verb and resource; the bench's own N creates are
subtracted) and PostgreSQL's ``pg_stat_database.xact_commit`` (read after the operator has
exited, so its backends have flushed their statistics). Other clients of the cluster
(controller manager, kwok, leases) write meanwhile too; on an idle local cluster that is a
handful of writes per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from bench import apiserver_profile, kube, procs
from bench.figures import Run
from bench.workload import COMPENSATED, DEPENDS, STEPS, Variant
from harness import stack
from harness.operator import OperatorProcess
from harness.stack import REPO_ROOT

#: The ServiceAccount (in kube-system) the bench's operator processes authenticate as.
BENCH_ACCOUNT = "sagaz-bench-operator"

TERMINAL = ("Succeeded", "Compensated", "CompensationFailed", "Failed")
SAGAS = "/apis/sagaz.io/v1alpha1/namespaces/{ns}/sagas"


def definition(participant: str) -> dict[str, Any]:
    steps = []
    for step in STEPS:
        entry: dict[str, Any] = {
            "name": step,
            "dependsOn": list(DEPENDS[step]),
            "action": {"http": {"url": f"{participant}/{step}"}},
        }
        if step in COMPENSATED:
            entry["compensation"] = {"http": {"url": f"{participant}/{step}/undo"}}
        steps.append(entry)
    return {"steps": steps}


class Operator:
    name = "Sagaz Operator"

    def __init__(
        self, *, kubeconfig: Path, database_url: str, participant_url: str, workdir: Path
    ) -> None:
        self.kubeconfig, self.database_url = kubeconfig, database_url
        self._participant, self._workdir = participant_url, workdir
        self.kube = kube.Kube(kubeconfig)
        self.profile: Path | None = None  # py-spy output for the next run, if set
        self._credentials: Path | None = None  # the operator's kubeconfig (``start``)

    async def start(self) -> None:
        """Install the CRDs (server-side apply, as tests/harness/crds.py) and wait for them."""
        documents = [
            doc
            for path in sorted((REPO_ROOT / "crds").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())
            if doc
        ]
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        for doc in documents:
            name = doc["metadata"]["name"]
            await self.kube.apply(f"{base}/{name}?fieldManager=sagaz-bench&force=true", doc)
        deadline = time.monotonic() + 60
        for doc in documents:
            while True:
                crd = await self.kube.request("GET", f"{base}/{doc['metadata']['name']}")
                conditions = (crd.get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRD {doc['metadata']['name']} not Established")
                await asyncio.sleep(0.2)
        self._credentials = await self._service_account_kubeconfig()

    async def _service_account_kubeconfig(self) -> Path:
        """The operator's credentials as in a pod: a ServiceAccount's token, not the admin's
        client certificate, whose chain the API server verifies on every request (4-5 % of its
        CPU in the bench's profile) where a token's verdict is cached. The account is bound to
        ``cluster-admin``, so RBAC is evaluated for each request, as for the chart's account."""
        where = "/api/v1/namespaces/kube-system/serviceaccounts"
        manager = "?fieldManager=sagaz-bench&force=true"
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": BENCH_ACCOUNT, "namespace": "kube-system"},
        }
        await self.kube.apply(f"{where}/{BENCH_ACCOUNT}{manager}", account)
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": BENCH_ACCOUNT},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": BENCH_ACCOUNT, "namespace": "kube-system"}
            ],
        }
        bindings = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
        await self.kube.apply(f"{bindings}/{BENCH_ACCOUNT}{manager}", binding)
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 24 * 3600},
        }
        answer = await self.kube.request("POST", f"{where}/{BENCH_ACCOUNT}/token", request)
        return stack.token_kubeconfig(
            self.kubeconfig,
            user=BENCH_ACCOUNT,
            token=answer["status"]["token"],
            path=self._workdir / "operator.kubeconfig",
        )

    async def close(self) -> None:
        await self.kube.close()

    @contextlib.asynccontextmanager
    async def namespace(self) -> AsyncIterator[str]:
        """A fresh namespace that no other operator serves: ``make demo``'s serves all but
        ``e2e-*``, the test suite's all ``e2e-*`` but ``e2e-own-*`` (tests with operators of
        their own), so the bench's own operator is the only one running these Sagas.

        Deleted (and waited for) afterwards: every run starts on the same cluster, not one
        that holds the Sagas of every run before it."""
        name = f"e2e-own-bench-{uuid.uuid4().hex[:8]}"
        await self.kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        try:
            yield name
        finally:
            await self.kube.delete_namespace(name)

    def operator(self, namespace: str) -> OperatorProcess:
        process = self.process(namespace)
        process.start()
        return process

    def process(self, namespace: str) -> OperatorProcess:
        """An operator process for ``namespace``, not started (several may serve it)."""
        count = len(list(self._workdir.glob(f"operator-{namespace}*.log")))
        assert self._credentials is not None, "start() first"
        return OperatorProcess(
            kubeconfig=self._credentials,
            database_url=self.database_url,
            namespaces=[namespace],
            log=self._workdir / f"operator-{namespace}-{count}.log",
            # The defaults: the test harness uses a 0.3 s status interval and 10 s Leases.
            env={
                "SAGAZ_STATUS_INTERVAL": "1",
                "SAGAZ_LEASE_DURATION": "15",
                "SAGAZ_LEASE_RENEW": "5",
            },
        )

    async def define(self, namespace: str) -> None:
        body = {
            "apiVersion": "sagaz.io/v1alpha1",
            "kind": "SagaDefinition",
            "metadata": {"name": "diamond"},
            "spec": definition(self._participant),
        }
        path = f"/apis/sagaz.io/v1alpha1/namespaces/{namespace}/sagadefinitions"
        await self.kube.request("POST", path, body)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the operator has checked it: it is serving
            current = await self.kube.request("GET", f"{path}/diamond")
            conditions = (current.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError("the SagaDefinition did not become Ready within 60s")

    async def create(self, namespace: str, names: list[str], spec: dict[str, Any]) -> None:
        """POST one Saga per name, all at once on the shared session."""
        path = SAGAS.format(ns=namespace)

        async def one(name: str) -> None:
            body = {"apiVersion": "sagaz.io/v1alpha1", "kind": "Saga"}
            body["metadata"] = {"name": name}  # type: ignore[assignment]
            await self.kube.request("POST", path, {**body, "spec": spec})

        await asyncio.gather(*(one(name) for name in names))

    async def run(self, *, n: int, variant: Variant) -> Run:
        async with self.namespace() as namespace:
            return await self._run(namespace, n=n, variant=variant)

    async def _run(self, namespace: str, *, n: int, variant: Variant) -> Run:
        process = self.operator(namespace)
        assert process.process is not None
        pid = process.process.pid
        profiler: subprocess.Popen[bytes] | None = None
        apiserver: asyncio.Task[bytes | None] | None = None
        try:
            await self.define(namespace)
            names = [f"saga-{i}" for i in range(n)]
            watcher = Watcher(self.kube, namespace)
            await watcher.start()
            before_cpu = procs.usage(pid).cpu_seconds
            before_control = procs.control_plane_cpu(stack.STATE)
            before_writes = kube.request_totals(await self.kube.text("/metrics"))
            before_xact = await xact_commit(self.database_url)
            if self.profile is not None:
                profiler = py_spy(pid, self.profile)
                apiserver = asyncio.create_task(apiserver_profile.capture(self.kube))
            run = Run(system=self.name, variant=variant, n=n, started=time.monotonic())
            await self.create(namespace, names, {"definitionRef": {"name": "diamond"}})
            created = time.monotonic() - run.started
            await watcher.wait(len(names))
            after = procs.usage(pid)
            after_control = procs.control_plane_cpu(stack.STATE)
            after_writes = kube.request_totals(await self.kube.text("/metrics"))
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=60)
            if apiserver is not None and self.profile is not None:
                captured = await apiserver  # the rest of its window: the cluster is idle
                if captured is not None:
                    self.profile.with_suffix(".pprof").write_bytes(captured)
            run.finished = {k: v for k, v in watcher.finished.items() if k in names}
            run.outcomes = {k: v for k, v in watcher.phases.items() if k in names}
            if len(run.finished) < n:
                run.notes.append(
                    f"only {len(run.finished)}/{n} finished (the watch was silent for 90 s)"
                )
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()
            process.stop()
        xact = await xact_commit(self.database_url) - before_xact
        writes = kube.writes_of_others(before_writes, after_writes, created=n)
        run.extra = {
            "cpu_s_per_saga": (after.cpu_seconds - before_cpu) / n,
            "peak_rss_mib": after.peak_rss_bytes / 2**20,
            "apiserver_writes_per_saga": sum(writes.values()) / n,
            "pg_xact_per_saga": xact / n,
            "create_s": created,
        }
        if before_control is not None and after_control is not None:
            run.extra["control_plane_cpu_s_per_saga"] = (after_control - before_control) / n
        run.extra.update(kube.per_saga(writes, n))
        return run


class Watcher:
    """One watch on a namespace's Sagas: when each was first seen in a terminal phase (and
    which), or in any of ``also`` phases. Re-lists and re-watches when the stream ends."""

    def __init__(self, client: kube.Kube, namespace: str, also: tuple[str, ...] = ()) -> None:
        self._kube, self._path = client, SAGAS.format(ns=namespace)
        self._phases = TERMINAL + also
        self.finished: dict[str, float] = {}
        self.phases: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listed = await self._kube.request("GET", self._path)
        self._see(listed["items"])
        self._task = asyncio.create_task(self._loop(listed["metadata"]["resourceVersion"]))

    def _see(self, items: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        self._changed.set()  # any change is progress
        for item in items:
            name = item["metadata"]["name"]
            phase = (item.get("status") or {}).get("phase")
            if phase in self._phases and name not in self.finished:
                self.finished[name], self.phases[name] = now, phase

    async def _loop(self, version: str) -> None:
        while True:
            try:
                async for event in self._kube.watch(self._path, version):
                    version = event["object"]["metadata"].get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED"):  # bookmarks are no progress
                        self._see([event["object"]])
                    elif event["type"] == "ERROR":  # e.g. 410 Gone: list again
                        listed = await self._kube.request("GET", self._path)
                        self._see(listed["items"])
                        version = listed["metadata"]["resourceVersion"]
            except (TimeoutError, OSError, ValueError) as error:
                print(f"  (watch interrupted: {error!r}; watching again)", file=sys.stderr)
                await asyncio.sleep(0.5)

    async def wait(self, count: int, *, stall: float = 90, within: float = 1800) -> None:
        """Until ``count`` Sagas are seen finished, the watch has been silent for ``stall``
        seconds (no status change at all: stuck, the run reports what it saw), or ``within``
        seconds passed. A loaded machine only slows progress, so the deadline is on the lack
        of it: with N sagas running side by side the first may finish late."""
        deadline = time.monotonic() + within
        while len(self.finished) < count and time.monotonic() < deadline:
            self._changed.clear()
            try:
                async with asyncio.timeout(min(stall, max(0.0, deadline - time.monotonic()))):
                    await self._changed.wait()
            except TimeoutError:
                return

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def xact_commit(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        await asyncio.sleep(0.5)  # exited backends' statistics reach the shared counters
        value = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(value)
    finally:
        await conn.close()


def py_spy(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """``py-spy record`` on the operator until SIGINT, as collapsed stacks (``--format raw``)."""
    spy = str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw"]
    command += ["--output", str(output), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
