"""The Grafana dashboard and the alerts against a real Prometheus.

Grafana cannot run here, so the dashboard is proven the way Grafana would use it: a real
Prometheus (hack/prometheus.sh) scrapes a real operator and a real outbox relay worker,
sagas run (one of them compensated) and their events are relayed to Kafka; then every
query of every panel of charts/sagaz-operator/dashboards/sagaz.json, with its template
variables resolved through their own queries, must return data. The same Prometheus loads
the chart's alert rules (charts/sagaz-operator/files/alerts.yaml) and must evaluate every
one without error, and ``promtool check metrics`` must find both /metrics pages clean.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from harness import crds, kube, stack
from harness.operator import OperatorProcess
from harness.outbox import WORKER
from harness.participants import Fail, ParticipantServer, Respond
from harness.prometheus import DASHBOARD, Prometheus, promtool
from harness.sagas import Sagas

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.kafka]

DEFINITION = "orders"
OUTBOXWORKER = "saga-events"
#: What the test puts in for Grafana's interval variables: a window that holds many 1 s scrapes.
#: The series the first wave of sagas creates, and the second wave must find scraped.
FIRST_SCRAPED = [
    'sagaz_step_duration_seconds_count{definition="orders"} > 0',
    'sagaz_saga_duration_seconds_count{definition="orders", phase="Compensated"} > 0',
    "sagaz_outbox_publish_latency_seconds_count > 0",
]
INTERVALS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "10m"}


@dataclass
class Observed:
    prometheus: Prometheus
    operator: OperatorProcess
    worker_port: int
    started: float  # when the first saga was started (unix seconds)


@pytest.fixture(scope="module")
def namespace_for_dashboard(k8s: ApiClient) -> Iterator[str]:
    crds.install(k8s)
    with kube.namespace(k8s, prefix="e2e-own") as name:  # the session's operator stays out
        yield name


@pytest.fixture(scope="module")
def worker_database() -> Iterator[stack.Postgres]:
    with stack.postgres(f"dashboard-{uuid.uuid4().hex[:6]}") as instance:
        yield instance


@pytest.fixture(scope="module")
async def observed(
    cluster: stack.Cluster,
    k8s: ApiClient,
    kafka_bootstrap: str,
    namespace_for_dashboard: str,
    worker_database: stack.Postgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Observed]:
    logs = tmp_path_factory.mktemp("dashboard")
    operator = OperatorProcess(
        kubeconfig=cluster.kubeconfig,
        database_url=worker_database.url,
        namespaces=[namespace_for_dashboard],
        log=logs / "operator.log",
        env={"SAGAZ_RESYNC_INTERVAL": "1"},
    )
    operator.start()  # migrates the database: the outbox table exists from here on
    worker, worker_port = _relay(worker_database.url, kafka_bootstrap, logs / "worker.log")
    prometheus = Prometheus(
        targets={
            "sagaz-operator": [f"127.0.0.1:{operator.metrics_port}"],
            "sagaz-outbox-worker": [f"127.0.0.1:{worker_port}"],
        },
        data=logs / "prometheus",
        log=logs / "prometheus.log",
    )
    try:
        await asyncio.to_thread(prometheus.start)
        # Prometheus applies discovered targets every 5 s: watch the sagas from their start.
        await _until(prometheus, 'count(up{job=~"sagaz-operator|sagaz-outbox-worker"} == 1) == 2')
        started = time.time()
        async with ParticipantServer() as shop:
            sagas = Sagas(k8s, namespace_for_dashboard)
            await _define(sagas, shop)
            # Two waves: a series is born at its first observation, so a rate (and every
            # latency quantile) sees only what comes after Prometheus has scraped it once.
            await _run_sagas(sagas, ["paid-1", "declined-1"])
            for born in FIRST_SCRAPED:
                await _until(prometheus, born)
            await _run_sagas(sagas, ["paid-2", "paid-3", "declined-2"])
        # Everything after the sagas (the relay publishing their events, the resync counting
        # their phases) is seen by the next scrapes.
        await _until(prometheus, 'sagaz_sagas_by_phase{phase="Compensated"} == 2')
        await _until(prometheus, "sagaz_outbox_pending_events == 0")
        # A rate needs two samples of a series: the counters born in one scrape get more.
        for _ in range(3):
            await _until(prometheus, f"min(timestamp(up)) > {time.time():.3f}")
        yield Observed(prometheus, operator, worker_port, started)
    finally:
        prometheus.stop()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        operator.stop()


def _relay(database_url: str, bootstrap: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A worker relaying the operator's own outbox (its saga events) to Kafka."""
    port = stack.free_port()
    env = {
        **os.environ,
        "SAGAZ_DATABASE_URL": database_url,
        "SAGAZ_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SAGAZ_KAFKA_TOPIC": f"dashboard-{uuid.uuid4().hex[:8]}",
        "SAGAZ_OUTBOXWORKER_NAME": OUTBOXWORKER,
        "SAGAZ_WORKER_ADDRESS": f"127.0.0.1:{port}",
        "SAGAZ_OUTBOX_POLL_SECONDS": "0.5",
        "SAGAZ_OUTBOX_REBALANCE_SECONDS": "0.5",
    }
    with log.open("wb") as out:
        process = subprocess.Popen([WORKER], env=env, stdout=out, stderr=subprocess.STDOUT)
    stack.wait_until_listening(port, process)
    return process, port


async def _define(sagas: Sagas, shop: ParticipantServer) -> None:
    """Sagas whose last step, for the sagas named ``declined-*``, fails and is compensated."""
    fast = {"maxAttempts": 2, "backoff": {"initialSeconds": 0.1, "factor": 2, "maxSeconds": 1}}
    for path in ("/reserve", "/release", "/charge"):
        shop.on(path, Respond(json={"ok": True}))
    for declined in ("declined-1", "declined-2"):
        shop.on("/charge", Fail(status=402), saga=declined)
    await sagas.define(
        DEFINITION,
        {
            "defaults": {"timeoutSeconds": 10, "retry": fast},
            "compensationRetry": fast,
            "steps": [
                {
                    "name": "reserve",
                    "action": {"http": {"url": shop.url("/reserve")}},
                    "compensation": {"http": {"url": shop.url("/release")}},
                },
                {
                    "name": "charge",
                    "dependsOn": ["reserve"],
                    "action": {"http": {"url": shop.url("/charge")}},
                },
            ],
        },
    )


async def _run_sagas(sagas: Sagas, names: list[str]) -> None:
    for name in names:
        await sagas.start(name, {"definitionRef": {"name": DEFINITION}, "input": {"n": name}})
    phases = await sagas.wait_all(names, within=120)
    assert phases == {
        name: "Compensated" if name.startswith("declined") else "Succeeded" for name in names
    }


async def _until(prometheus: Prometheus, expr: str, *, within: float = 60) -> None:
    """Wait until ``expr`` has a result: Prometheus has scraped what the test is after."""
    deadline = time.monotonic() + within
    while not (await asyncio.to_thread(prometheus.api, "query", query=expr))["result"]:
        assert time.monotonic() < deadline, f"no result for {expr} within {within}s"
        await asyncio.sleep(0.5)


def _panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [panel for panel in dashboard["panels"] if panel.get("targets")]


def _variables(prometheus: Prometheus) -> dict[str, str]:
    """Each query variable's value, resolved with its own ``label_values(metric, label)``:
    the one this test created (the dashboard's "All" would hide a variable that lists
    nothing)."""
    wanted = {"definition": DEFINITION, "outboxworker": OUTBOXWORKER}
    found: dict[str, str] = {}
    for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]["query"])
        assert query is not None, variable
        metric, label = query.groups()
        values = prometheus.api(f"label/{label}/values", **{"match[]": metric})
        assert wanted[variable["name"]] in values, (variable["name"], values)
        found[variable["name"]] = wanted[variable["name"]]
    return found


def _resolve(expr: str, variables: dict[str, str]) -> str:
    for name, value in INTERVALS.items():
        expr = expr.replace(name, value)
    for name, value in variables.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in expr, f"an unresolved variable in {expr}"
    return expr


def test_every_panel_query_returns_data(observed: Observed) -> None:
    variables = _variables(observed.prometheus)
    empty = []
    checked = 0
    for panel in _panels():
        for target in panel["targets"]:
            expr = _resolve(target["expr"], variables)
            points = observed.prometheus.finite_points(
                expr, start=observed.started, end=time.time()
            )
            checked += 1
            if not points:
                empty.append(f"{panel['title']}: {expr}")
    assert not empty, "panel queries without data:\n" + "\n".join(empty)
    assert checked >= 20


def test_prometheus_evaluates_every_alert_rule_and_none_fires(observed: Observed) -> None:
    groups = observed.prometheus.api("rules")["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}

    assert len(rules) == 8
    assert {name: rule["health"] for name, rule in rules.items()} == dict.fromkeys(rules, "ok")
    firing = [name for name, rule in rules.items() if rule["state"] != "inactive"]
    # A healthy stack whose only failed saga was compensated: nothing to wake anyone for.
    assert firing == []


@pytest.mark.parametrize("page", ["operator", "worker"])
def test_promtool_finds_the_metrics_page_clean(observed: Observed, page: str) -> None:
    port = observed.operator.metrics_port if page == "operator" else observed.worker_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as answer:
        text = answer.read().decode()
    assert "sagaz_" in text

    checked = promtool("check", "metrics", stdin=text)

    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
