"""The local control plane is a real one: API, RBAC, controllers, scheduler and kwok."""

from __future__ import annotations

import subprocess

import pytest
from kubernetes import client

from harness import kube, stack

pytestmark = pytest.mark.cluster


def test_configmap_round_trips_through_the_api(k8s: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="hello"), data={"k": "v"}),
    )

    assert core.read_namespaced_config_map("hello", namespace).data == {"k": "v"}


@pytest.mark.usefixtures("kwok_node")
def test_kubectl_sees_the_kwok_node_ready(cluster: stack.Cluster) -> None:
    out = subprocess.run(
        [stack.kubectl(), "--kubeconfig", str(cluster.kubeconfig), "get", "nodes", "--no-headers"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    assert out.split()[:2] == ["kwok-node-0", "Ready"]


def test_rbac_is_enforced(k8s: client.ApiClient, namespace: str) -> None:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user="nobody",
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb="list", resource="secrets"
            ),
        )
    )

    decision = client.AuthorizationV1Api(k8s).create_subject_access_review(review)

    assert decision.status.allowed is False


@pytest.mark.usefixtures("kwok_node")
def test_deployment_gets_running_pods(k8s: client.ApiClient, namespace: str) -> None:
    labels = {"app": "smoke"}
    pod = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="example/app:1")]),
    )
    client.AppsV1Api(k8s).create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="smoke"),
            spec=client.V1DeploymentSpec(
                replicas=2, selector=client.V1LabelSelector(match_labels=labels), template=pod
            ),
        ),
    )

    ready = kube.wait_for(
        client.AppsV1Api(k8s).list_namespaced_deployment,
        lambda d: (d.status.ready_replicas or 0) == 2,
        namespace=namespace,
    )
    pods = client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector="app=smoke")

    assert ready.metadata.name == "smoke"
    assert sorted(p.status.phase for p in pods.items) == ["Running", "Running"]


@pytest.mark.parametrize(
    ("pod_labels", "condition"),
    [({}, "Complete"), ({"sagaz.io/kwok-outcome": "fail"}, "Failed")],
    ids=["succeeds", "fails"],
)
@pytest.mark.usefixtures("kwok_node")
def test_job_finishes_as_its_pod_does(
    k8s: client.ApiClient, namespace: str, pod_labels: dict[str, str], condition: str
) -> None:
    client.BatchV1Api(k8s).create_namespaced_job(
        namespace,
        client.V1Job(
            metadata=client.V1ObjectMeta(name="smoke"),
            spec=client.V1JobSpec(
                backoff_limit=0,
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=pod_labels),
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        containers=[client.V1Container(name="c", image="example/job:1")],
                    ),
                ),
            ),
        ),
    )

    def finished(job: client.V1Job) -> bool:
        return any(
            c.type in ("Complete", "Failed") and c.status == "True"
            for c in job.status.conditions or []
        )

    job = kube.wait_for(client.BatchV1Api(k8s).list_namespaced_job, finished, namespace=namespace)

    assert [c.type for c in job.status.conditions if c.status == "True"][-1] == condition
