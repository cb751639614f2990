"""What an OutboxWorker becomes: a Deployment of relay workers and, optionally, an HPA.

Pure builders: given the spec, they return the complete desired objects. The reconciler
applies them with server-side apply, so fields we set are ours and drift back when someone
edits them by hand, while fields others own (the HPA's replica count) are left alone.

The pod runs as a restricted Pod Security Standard pod: non-root, read-only root file
system, no privilege escalation, every capability dropped, seccomp RuntimeDefault.
"""

from __future__ import annotations

from typing import Any

from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.api.outboxworker import OutboxWorkerSpec

PORT = 8080
METRIC = "sagaz_outbox_pending_events"
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}


def labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "sagaz-outbox-worker",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": "sagaz-operator",
        "sagaz.io/outboxworker": name,
    }


def selector(name: str) -> str:
    """The pods' label selector as a string (``status.selector``, the scale subresource)."""
    return f"sagaz.io/outboxworker={name}"


def owner(*, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "OutboxWorker",
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def max_replicas(spec: OutboxWorkerSpec) -> int:
    """Replicas beyond the partition count would idle: the HPA never goes past it."""
    wanted = spec.autoscaling.max_replicas if spec.autoscaling else spec.replicas
    return max(1, min(wanted, spec.partitions))


def autoscaled(spec: OutboxWorkerSpec) -> bool:
    return spec.autoscaling is not None and spec.autoscaling.enabled


def deployment(
    spec: OutboxWorkerSpec, *, name: str, namespace: str, uid: str, image: str
) -> dict[str, Any]:
    pod_labels = labels(name)
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": _child_name(name),
            "namespace": namespace,
            "labels": pod_labels,
            "ownerReferences": [owner(name=name, uid=uid)],
        },
        "spec": {
            "selector": {"matchLabels": {"sagaz.io/outboxworker": name}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": _pod(spec, name=name, image=spec.image or image),
            },
        },
    }
    if not autoscaled(spec):
        # With autoscaling on, the HPA owns the replica count; we must not fight it.
        body["spec"]["replicas"] = spec.replicas
    return body


def autoscaler(spec: OutboxWorkerSpec, *, name: str, namespace: str, uid: str) -> dict[str, Any]:
    assert spec.autoscaling is not None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": _child_name(name),
            "namespace": namespace,
            "labels": labels(name),
            "ownerReferences": [owner(name=name, uid=uid)],
        },
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": _child_name(name),
            },
            "minReplicas": min(spec.autoscaling.min_replicas, max_replicas(spec)),
            "maxReplicas": max_replicas(spec),
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": METRIC,
                            "selector": {"matchLabels": {"outboxworker": name}},
                        },
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(spec.autoscaling.target_pending_events_per_replica),
                        },
                    },
                }
            ],
        },
    }


def _child_name(name: str) -> str:
    return f"{name}-outbox-worker"[:63].rstrip("-")


def _pod(spec: OutboxWorkerSpec, *, name: str, image: str) -> dict[str, Any]:
    secret = spec.database.url_secret_ref
    env = [
        {
            "name": "SAGAZ_DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}},
        },
        {"name": "SAGAZ_OUTBOX_TABLE", "value": spec.database.table},
        {"name": "SAGAZ_KAFKA_BOOTSTRAP_SERVERS", "value": spec.kafka.bootstrap_servers},
        {"name": "SAGAZ_KAFKA_TOPIC", "value": spec.kafka.topic},
        {"name": "SAGAZ_OUTBOX_BATCH_SIZE", "value": str(spec.batch_size)},
        {"name": "SAGAZ_OUTBOX_PARTITIONS", "value": str(spec.partitions)},
        {"name": "SAGAZ_OUTBOX_MAX_ATTEMPTS", "value": str(spec.max_attempts)},
        {"name": "SAGAZ_OUTBOXWORKER_NAME", "value": name},
        {"name": "SAGAZ_WORKER_ADDRESS", "value": f"0.0.0.0:{PORT}"},
    ]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    return {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "worker",
                "image": image,
                "command": ["sagaz-outbox-worker"],
                "env": env,
                "ports": [{"name": "http", "containerPort": PORT}],
                "livenessProbe": {**probe, "initialDelaySeconds": 10},
                "readinessProbe": probe,
                "resources": spec.resources or DEFAULT_RESOURCES,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
