"""An OutboxWorker's HPA scales on its real backlog, served by the operator's external metrics API.

The whole path is real: rows in PostgreSQL, the operator computing
``sagaz_outbox_pending_events{outboxworker=...}`` from them, the API server's aggregation layer
proxying the HPA controller's request to it (front-proxy client certificate, SubjectAccessReview),
kube-controller-manager's HPA controller scaling the Deployment, kwok running its pods (which
run no containers, so the relay that drains the table runs here as a process).

The backlog is then drained the way it is in production: a real relay worker
(``sagaz-outbox-worker``) publishes every row to the real Kafka, and the fleet shrinks.

Before the operator served the API, the same HPA reported ``FailedGetExternalMetric`` and kept
``minReplicas`` (the failure message below shows the HPA's conditions).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from kubernetes import client

from harness import kube, metrics_api, stack
from harness.outbox import WORKER, wait_for_status
from harness.sagas import Sagas

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.kafka]

CHILD = "orders-outbox-worker"
ROWS = 3000
TARGET = 500  # pending events per replica: 3000 rows want 6 replicas, capped at 4 partitions
SCALING = 300.0  # seconds: the HPA syncs every 15 s; the CPU is shared, so be generous


def _raw(cluster: stack.Cluster, path: str) -> dict[str, Any]:
    done = subprocess.run(
        [stack.kubectl(), "--kubeconfig", str(cluster.kubeconfig), "get", "--raw", path],
        check=True,
        capture_output=True,
        text=True,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


async def _deployment(k8s: client.ApiClient, namespace: str, replicas: int) -> Any:
    """The worker Deployment once it has ``replicas`` ready, else fail showing the HPA's view."""
    apps = client.AppsV1Api(k8s)
    try:
        return await asyncio.to_thread(
            kube.wait_for,
            apps.list_namespaced_deployment,
            lambda d: (
                d.metadata.name == CHILD
                and d.spec.replicas == replicas
                and (d.status.ready_replicas or 0) == replicas
            ),
            timeout=SCALING,
            namespace=namespace,
        )
    except TimeoutError:
        pytest.fail(
            f"the Deployment never had {replicas} replicas; {await _hpa_says(k8s, namespace)}"
        )


async def _hpa_says(k8s: client.ApiClient, namespace: str) -> str:
    hpa = await asyncio.to_thread(
        client.AutoscalingV2Api(k8s).read_namespaced_horizontal_pod_autoscaler, CHILD, namespace
    )
    conditions = [
        f"{c.type}={c.status} {c.reason}: {c.message}"
        for c in (hpa.status and hpa.status.conditions) or []
    ]
    return f"the HPA says {conditions}"


def _average(hpa: Any) -> str | None:
    metrics = (hpa.status and hpa.status.current_metrics) or []
    external = metrics[0].external if metrics else None
    return external.current.average_value if external and external.current else None


def _condition(hpa: Any, kind: str) -> tuple[str, str] | None:
    for condition in hpa.status.conditions or []:
        if condition.type == kind:
            return condition.status, condition.reason
    return None


@pytest.mark.usefixtures("kwok_node")
async def test_hpa_scales_on_pending_events(
    k8s: client.ApiClient,
    cluster: stack.Cluster,
    database: stack.Postgres,
    own_namespace: str,
    own_sagas: Sagas,
    operators: Any,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    port = stack.free_port()
    operator = operators(**metrics_api.operator_env(port))
    operator.start()
    ns = own_namespace
    await asyncio.to_thread(
        client.CoreV1Api(k8s).create_namespaced_secret,
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="orders-db", labels={"sagaz.io/outbox-database": "true"}
            ),
            data={"url": base64.b64encode(database.url.encode()).decode()},
        ),
    )
    conn = await asyncpg.connect(database.url)
    try:
        await conn.executemany(
            "INSERT INTO sagaz_outbox (id, aggregate_type, aggregate_id, event_type, payload)"
            " VALUES ($1, 'Order', $2, 'OrderPlaced', '{}')",
            [(uuid.uuid4(), f"order-{i}") for i in range(ROWS)],
        )
        await own_sagas.create(
            "outboxworkers",
            "OutboxWorker",
            "orders",
            {
                "database": {"urlSecretRef": {"name": "orders-db", "key": "url"}},
                "kafka": {"bootstrapServers": "kafka.data.svc:9092"},
                "partitions": 4,
                "autoscaling": {
                    "enabled": True,
                    "minReplicas": 1,
                    "maxReplicas": 10,
                    "targetPendingEventsPerReplica": TARGET,
                },
            },
        )
        # The product keeps Kubernetes' 5-minute scale-down window; the test does not wait it.
        hpa = await asyncio.to_thread(
            kube.wait_for,
            client.AutoscalingV2Api(k8s).list_namespaced_horizontal_pod_autoscaler,
            lambda h: h.metadata.name == CHILD,
            namespace=ns,
        )
        await asyncio.to_thread(
            client.AutoscalingV2Api(k8s).patch_namespaced_horizontal_pod_autoscaler,
            hpa.metadata.name,
            ns,
            {"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}},
        )
        try:
            with metrics_api.registered(k8s, port):
                await _scales_up(k8s, cluster, ns)
                with _relay(database.url, kafka_bootstrap, tmp_path / "relay.log"):
                    await wait_for_status(conn, "sagaz_outbox", "published", ROWS, within=120)
                    await _scales_down(k8s, cluster, ns)
        except metrics_api.NotAvailableError as error:
            pytest.fail(f"{error}; {await _hpa_says(k8s, ns)}")
        finally:
            # While its operator runs, which removes the finalizer: else the namespace the
            # fixture deletes stays Terminating for good.
            await asyncio.to_thread(_delete_worker, cluster, ns)
    finally:
        await conn.close()


def _delete_worker(cluster: stack.Cluster, ns: str) -> None:
    subprocess.run(
        [stack.kubectl(), "--kubeconfig", str(cluster.kubeconfig), "-n", ns, "delete",
         "outboxworker/orders", "--wait=true", "--timeout=120s"],
        check=True,
        capture_output=True,
    )  # fmt: skip


def _metric(cluster: stack.Cluster, ns: str) -> dict[str, Any]:
    """What the HPA controller reads, through the API server."""
    return _raw(
        cluster,
        f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}"
        "/sagaz_outbox_pending_events?labelSelector=outboxworker%3Dorders",
    )


@contextlib.contextmanager
def _relay(database_url: str, bootstrap: str, log: Path) -> Iterator[None]:
    """One real relay worker publishing the table to Kafka, stopped (SIGTERM) afterwards."""
    port = stack.free_port()
    env = {
        **os.environ,
        "SAGAZ_DATABASE_URL": database_url,
        "SAGAZ_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SAGAZ_KAFKA_TOPIC": f"autoscaling-{uuid.uuid4().hex[:8]}",
        "SAGAZ_OUTBOX_PARTITIONS": "4",
        "SAGAZ_OUTBOXWORKER_NAME": "orders",
        "SAGAZ_WORKER_ADDRESS": f"127.0.0.1:{port}",
    }
    with log.open("wb") as out:
        process = subprocess.Popen([WORKER], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        stack.wait_until_listening(port, process)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


async def _scales_up(k8s: client.ApiClient, cluster: stack.Cluster, ns: str) -> None:
    metric = _metric(cluster, ns)
    assert [item["value"] for item in metric["items"]] == [str(ROWS)]
    assert metric["items"][0]["metricLabels"] == {"outboxworker": "orders"}

    # 3000 pending / 500 per replica = 6, capped at the 4 partitions.
    await _deployment(k8s, ns, 4)
    # The HPA's own account: the metric read, per replica, at the new size.
    hpa = await asyncio.to_thread(
        kube.wait_for,
        client.AutoscalingV2Api(k8s).list_namespaced_horizontal_pod_autoscaler,
        lambda h: h.metadata.name == CHILD and _average(h) == str(ROWS // 4),
        timeout=SCALING,
        namespace=ns,
    )
    assert hpa.status.current_metrics[0].external.metric.name == "sagaz_outbox_pending_events"
    assert _condition(hpa, "ScalingActive") == ("True", "ValidMetricFound")


async def _scales_down(k8s: client.ApiClient, cluster: stack.Cluster, ns: str) -> None:
    """The relay published everything: the backlog is gone and the fleet shrinks."""
    assert [item["value"] for item in _metric(cluster, ns)["items"]] == ["0"]
    await _deployment(k8s, ns, 1)
