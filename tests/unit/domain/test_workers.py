"""What an OutboxWorker becomes: the Deployment and HPA builders."""

from __future__ import annotations

from typing import Any

from sagaz_operator.api.outboxworker import OutboxWorkerSpec
from sagaz_operator.domain import workers


def spec(**fields: Any) -> OutboxWorkerSpec:
    return OutboxWorkerSpec.model_validate(
        {
            "database": {"urlSecretRef": {"name": "db", "key": "url"}},
            "kafka": {"bootstrapServers": "k:9092"},
            **fields,
        }
    )


def test_fixed_replicas_are_ours_autoscaled_ones_are_the_hpas() -> None:
    fixed = workers.deployment(spec(replicas=3), name="o", namespace="n", uid="u", image="i")
    scaled = workers.deployment(
        spec(autoscaling={"enabled": True}), name="o", namespace="n", uid="u", image="i"
    )

    assert fixed["spec"]["replicas"] == 3
    assert "replicas" not in scaled["spec"]


def test_hpa_never_scales_past_the_partitions() -> None:
    body = workers.autoscaler(
        spec(partitions=4, autoscaling={"enabled": True, "minReplicas": 6, "maxReplicas": 50}),
        name="o",
        namespace="n",
        uid="u",
    )

    assert body["spec"]["maxReplicas"] == 4
    assert body["spec"]["minReplicas"] == 4
    assert body["spec"]["metrics"][0]["external"]["metric"]["selector"] == {
        "matchLabels": {"outboxworker": "o"}
    }


def test_worker_pod_is_restricted_and_reads_its_database_url_from_the_secret() -> None:
    body = workers.deployment(spec(image="mine:2"), name="o", namespace="n", uid="u", image="i")

    pod = body["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert container["image"] == "mine:2"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert env["SAGAZ_DATABASE_URL"]["valueFrom"] == {"secretKeyRef": {"name": "db", "key": "url"}}
