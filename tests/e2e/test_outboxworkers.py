"""An OutboxWorker becomes a Deployment and an HPA on the real cluster, and stays that way."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from kubernetes import client

from harness import kube, stack
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster


@pytest.fixture
async def outbox_table(postgres_url: str) -> AsyncIterator[str]:
    """An outbox table of its own (same schema as the operator's) in the session database."""
    table = f"outbox_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(postgres_url)
    await conn.execute(f"CREATE TABLE {table} (LIKE sagaz_outbox INCLUDING ALL)")
    try:
        yield table
    finally:
        await conn.execute(f"DROP TABLE {table}")
        await conn.close()


@pytest.fixture
async def workers(
    k8s: client.ApiClient, sagas: Sagas, postgres_url: str, outbox_table: str
) -> dict[str, Any]:
    await asyncio.to_thread(
        client.CoreV1Api(k8s).create_namespaced_secret,
        sagas.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="orders-db", labels={"sagaz.io/outbox-database": "true"}
            ),
            data={"url": base64.b64encode(postgres_url.encode()).decode()},
        ),
    )
    return {
        "database": {"urlSecretRef": {"name": "orders-db", "key": "url"}, "table": outbox_table},
        "kafka": {"bootstrapServers": "kafka.data.svc:9092"},
        "partitions": 4,
        "autoscaling": {
            "enabled": True,
            "minReplicas": 1,
            "maxReplicas": 10,
            "targetPendingEventsPerReplica": 100,
        },
    }


async def deployment(k8s: client.ApiClient, namespace: str, predicate: Any) -> Any:
    return await asyncio.to_thread(
        kube.wait_for,
        client.AppsV1Api(k8s).list_namespaced_deployment,
        predicate,
        namespace=namespace,
    )


def kubectl(cluster: stack.Cluster, namespace: str, *args: str) -> str:
    return subprocess.run(
        [stack.kubectl(), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.mark.usefixtures("kwok_node")
async def test_outboxworker_lifecycle(
    k8s: client.ApiClient,
    cluster: stack.Cluster,
    sagas: Sagas,
    workers: dict[str, Any],
    postgres_url: str,
    outbox_table: str,
) -> None:
    ns = sagas.namespace
    conn = await asyncpg.connect(postgres_url)
    await conn.executemany(
        f"INSERT INTO {outbox_table} (id, aggregate_type, aggregate_id, event_type, payload)"
        " VALUES ($1, 'Order', $2, 'OrderPlaced', '{}')",
        [(uuid.uuid4(), f"order-{i}") for i in range(5)],
    )
    await conn.close()
    await sagas.create("outboxworkers", "OutboxWorker", "orders", workers)

    # Autoscaled: a Deployment without a replica count of ours, an HPA capped at partitions.
    created = await deployment(k8s, ns, lambda d: (d.status.ready_replicas or 0) >= 1)
    hpa = await asyncio.to_thread(
        client.AutoscalingV2Api(k8s).read_namespaced_horizontal_pod_autoscaler,
        "orders-outbox-worker",
        ns,
    )
    status = (
        await sagas.wait_for(
            lambda o: (
                (o.get("status") or {}).get("pendingEvents") == 5
                and (o.get("status") or {}).get("readyReplicas", 0) >= 1
            ),
            plural="outboxworkers",
        )
    )["status"]
    pod = created.spec.template.spec
    assert created.metadata.owner_references[0].kind == "OutboxWorker"
    assert pod.security_context.run_as_non_root is True
    assert pod.containers[0].security_context.read_only_root_filesystem is True
    assert pod.containers[0].security_context.capabilities.drop == ["ALL"]
    assert hpa.spec.max_replicas == 4  # capped at spec.partitions
    assert hpa.spec.metrics[0].external.metric.name == "sagaz_outbox_pending_events"
    assert hpa.spec.metrics[0].external.target.average_value == "100"
    assert status["selector"] == "sagaz.io/outboxworker=orders"
    assert "orders" in kubectl(cluster, ns, "get", "obw")

    # Autoscaling off, fixed replicas: the HPA goes, the Deployment follows spec.replicas.
    await sagas.patch_object(
        "outboxworkers", "orders", {"autoscaling": {"enabled": False}, "replicas": 3}
    )
    await deployment(k8s, ns, lambda d: d.spec.replicas == 3 and d.status.ready_replicas == 3)
    await sagas.wait_for(
        lambda o: (o.get("status") or {}).get("readyReplicas") == 3, plural="outboxworkers"
    )
    hpas = await asyncio.to_thread(
        client.AutoscalingV2Api(k8s).list_namespaced_horizontal_pod_autoscaler, ns
    )
    assert hpas.items == []

    # The scale subresource works, and manual edits of the child are reverted.
    kubectl(cluster, ns, "scale", "outboxworker/orders", "--replicas=2")
    await deployment(k8s, ns, lambda d: d.spec.replicas == 2)
    kubectl(cluster, ns, "set", "image", "deployment/orders-outbox-worker", "worker=evil:1")
    reverted = await deployment(
        k8s, ns, lambda d: d.spec.template.spec.containers[0].image != "evil:1"
    )
    assert reverted.spec.template.spec.containers[0].image.startswith("sagaz-operator:")

    # Deleting the OutboxWorker garbage-collects its Deployment.
    kubectl(cluster, ns, "delete", "outboxworker/orders", "--wait=true")
    assert await asyncio.to_thread(
        kube.wait_deleted,
        client.AppsV1Api(k8s).list_namespaced_deployment,
        "orders-outbox-worker",
        namespace=ns,
    )
