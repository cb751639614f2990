"""What one operator does through the real apiserver: N diamond sagas created at once.

    source .dev/env && .venv/bin/python hack/benchmarks/diamond.py --sagas 300 [--profile p.svg]

Starts a fast aiohttp participant (its own process), a fresh namespace and an operator process
serving only it (the default status interval), creates N sagas ``a -> (b, c) -> d`` of HTTP
POSTs at once and waits, by a watch, until all are terminal. Prints sagas/s (creation start to
the last terminal phase), the operator's CPU-seconds per saga (``/proc/<pid>/stat``), and the
apiserver's writes per saga by verb and resource (the delta of ``apiserver_request_total``,
the benchmark's own creates of the Sagas subtracted; only Sagas, Events, Jobs and Secrets are
counted). ``--profile`` records the operator with py-spy meanwhile (``.venv/bin/pip install
py-spy``; a ``.txt`` name writes collapsed stacks). Not a test: numbers on a shared machine
are noisy, so repeat it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from kubernetes import client  # noqa: E402

from harness.operator import OperatorProcess  # noqa: E402
from harness.stack import free_port  # noqa: E402
from sagaz_operator.api.definition import GROUP, VERSION  # noqa: E402

# Loosely typed over the official client, so not type-checked from here.
kube: Any = importlib.import_module("harness.kube")
crds: Any = importlib.import_module("harness.crds")

TERMINAL = ("Succeeded", "Compensated", "CompensationFailed", "Failed")
WRITES = ("POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE")
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def serve(port: int) -> None:
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        if request.match_info["step"] == "fail":
            return web.json_response({"error": "refused"}, status=422)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{step}", ok)
    app.router.add_route("*", "/{step}/undo", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def diamond(url: str, *, fail: bool) -> dict[str, Any]:
    """``a -> (b, c) -> d``; with ``fail``, d is refused (422) and a, b, c are compensated."""

    def step(name: str, *after: str) -> dict[str, Any]:
        path = "fail" if fail and name == "d" else name
        body: dict[str, Any] = {"name": name, "action": {"http": {"url": f"{url}/{path}"}}}
        if fail and name != "d":
            body["compensation"] = {"http": {"url": f"{url}/{name}/undo"}}
        if after:
            body["dependsOn"] = list(after)
        return body

    return {"steps": [step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")]}


def writes(api: client.ApiClient) -> Counter[tuple[str, str]]:
    pool: Any = api.rest_client.pool_manager  # urllib3, with the kubeconfig's client cert
    answer = pool.request("GET", api.configuration.host + "/metrics")
    counts: Counter[tuple[str, str]] = Counter()
    for line in answer.data.decode().splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") not in WRITES:
            continue
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        if labels.get("group"):
            resource += "." + labels["group"]
        if resource.split("/")[0].split(".")[0] in ("sagas", "events", "jobs", "secrets"):
            counts[(labels["verb"], resource)] += int(float(match["value"]))
    return counts


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    api = kube.api_client(os.environ["KUBECONFIG"])
    crds.install(api)
    custom = client.CustomObjectsApi(api)
    port = free_port()
    participant = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    spy: subprocess.Popen[bytes] | None = None
    log = Path(tempfile.mkdtemp()) / "operator.log"
    with kube.namespace(api, prefix="bench") as namespace:
        operator = OperatorProcess(
            kubeconfig=Path(os.environ["KUBECONFIG"]),
            database_url=os.environ["SAGAZ_DATABASE_URL"],
            namespaces=[namespace],
            log=log,
            env={"SAGAZ_STATUS_INTERVAL": str(arguments.status_interval)},
        )
        operator.start()
        try:
            assert operator.process is not None
            pid = operator.process.pid
            if arguments.profile:
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--nonblocking",
                        "-r",
                        "50",
                        "-o",
                        arguments.profile,
                        "-f",
                        "raw" if arguments.profile.endswith(".txt") else "flamegraph",
                        "--pid",
                        str(pid),
                    ]
                )
            spec = {
                "definition": diamond(f"http://127.0.0.1:{port}", fail=arguments.fail),
                "input": {},
            }
            before, cpu_before = writes(api), cpu_seconds(pid)
            started = time.monotonic()

            def create(index: int) -> None:
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Saga",
                    "metadata": {"name": f"d-{index}"},
                    "spec": spec,
                }
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "sagas", body)

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(create, range(arguments.sagas)))
            created = time.monotonic() - started
            phases = wait_all(custom, namespace, arguments.sagas, within=arguments.within)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(pid) - cpu_before
            time.sleep(3)  # late writes (Kopf's bookkeeping after the daemon exits)
            delta = writes(api) - before
            delta[("POST", f"sagas.{GROUP}")] -= arguments.sagas
            delta = +delta
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait()
            operator.stop()
            participant.terminate()
    total = sum(delta.values())
    return {
        "sagas": arguments.sagas,
        "phases": dict(Counter(phases.values())),
        "created_s": round(created, 2),
        "elapsed_s": round(elapsed, 2),
        "sagas_per_s": round(arguments.sagas / elapsed, 1),
        "operator_cpu_ms_per_saga": round(1000 * cpu / arguments.sagas, 1),
        "writes_per_saga": round(total / arguments.sagas, 2),
        "writes": {
            f"{verb} {resource}": round(count / arguments.sagas, 2)
            for (verb, resource), count in sorted(delta.items())
        },
    }


def wait_all(
    custom: client.CustomObjectsApi, namespace: str, count: int, *, within: float
) -> dict[str, str]:
    phases: dict[str, str] = {}

    def record(item: dict[str, Any]) -> bool:
        phase = (item.get("status") or {}).get("phase")
        if phase in TERMINAL:
            phases[item["metadata"]["name"]] = phase
        return len(phases) >= count

    deadline = time.monotonic() + within
    while True:  # a watch can end early under load: list again and go on watching
        try:
            kube.wait_for(
                custom.list_namespaced_custom_object,
                record,
                timeout=min(60, max(1, deadline - time.monotonic())),
                group=GROUP,
                version=VERSION,
                namespace=namespace,
                plural="sagas",
            )
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sagas", type=int, default=300)
    parser.add_argument("--within", type=float, default=600)
    parser.add_argument("--status-interval", type=float, default=1.0)
    parser.add_argument("--profile", help="write a py-spy flame graph of the operator here")
    parser.add_argument("--fail", action="store_true", help="d fails: every saga compensates")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve)
        return
    print(json.dumps(run(arguments), indent=2))


if __name__ == "__main__":
    main()
