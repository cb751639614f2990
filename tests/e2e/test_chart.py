"""The Helm chart: it lints, installs, and its RBAC is enough for the operator to work.

The local cluster has no image registry and kwok does not run containers, so the chart's own
operator pod cannot really run here. Instead the operator process runs with the chart's
ServiceAccount token: every API call it makes is authorised by the chart's ClusterRole, so a
missing permission fails these tests.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from harness import kube, stack
from harness.operator import OperatorProcess
from harness.participants import ParticipantServer, Respond
from harness.plugin import Plugin
from harness.sagas import Sagas, kwok_job

pytestmark = pytest.mark.cluster

CHART = stack.REPO_ROOT / "charts" / "sagaz-operator"


def helm(cluster: stack.Cluster, *args: str) -> str:
    pinned = stack.STATE / "bin" / "helm"
    command = [str(pinned) if pinned.exists() else "helm", "--kubeconfig", str(cluster.kubeconfig)]
    return subprocess.run(
        [*command, *args], check=True, capture_output=True, text=True, timeout=300
    ).stdout


def test_chart_lints_and_carries_the_generated_crds(cluster: stack.Cluster) -> None:
    helm(cluster, "lint", str(CHART))

    for generated in sorted((stack.REPO_ROOT / "crds").glob("*.yaml")):
        copy = CHART / "crds" / generated.name
        assert copy.read_text() == generated.read_text(), f"{copy} drifted: run make crds"


def test_the_read_api_is_served_behind_a_service_unless_turned_off(cluster: stack.Cluster) -> None:
    def rendered(*values: str) -> list[dict[str, Any]]:
        text = helm(cluster, "template", "r", str(CHART), *values)
        return [doc for doc in yaml.safe_load_all(text) if doc]

    on = rendered("--set", "api.port=9999")
    services = {d["metadata"]["name"]: d for d in on if d["kind"] == "Service"}
    api = services["r-sagaz-operator-api"]
    assert api["spec"]["ports"] == [{"name": "http", "port": 9999, "targetPort": "api"}]
    assert api["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    container = next(d for d in on if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert {"name": "SAGAZ_API_ADDRESS", "value": "0.0.0.0:9999"} in container["env"]

    off = rendered("--set", "api.enabled=false")
    assert "r-sagaz-operator-api" not in {d["metadata"]["name"] for d in off}
    container = next(d for d in off if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert all(e["name"] != "SAGAZ_API_ADDRESS" for e in container["env"])


@pytest.fixture
def release(
    k8s: client.ApiClient, cluster: stack.Cluster, postgres_url: str
) -> Iterator[tuple[str, str]]:
    with kube.namespace(k8s, prefix="e2e-own-chart") as namespace:
        name = f"sagaz-{uuid.uuid4().hex[:6]}"
        helm(
            cluster,
            "install",
            name,
            str(CHART),
            "-n",
            namespace,
            "--set",
            "postgresql.enabled=false",
            "--set",
            f"database.url={postgres_url}",
        )
        try:
            yield name, namespace
        finally:
            helm(cluster, "uninstall", name, "-n", namespace)


def token_kubeconfig(
    k8s: client.ApiClient, cluster: stack.Cluster, *, account: str, namespace: str, path: Path
) -> Path:
    token = (
        client.CoreV1Api(k8s)
        .create_namespaced_service_account_token(
            account,
            namespace,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
        )
        .status.token
    )
    admin: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {"name": "chart", "context": {"cluster": admin["clusters"][0]["name"], "user": account}}
        ],
        "current-context": "chart",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.usefixtures("kwok_node")
async def test_installed_chart_rbac_is_enough_to_run_sagas_jobs_and_workers(
    k8s: client.ApiClient,
    cluster: stack.Cluster,
    release: tuple[str, str],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    name, namespace = release
    deployment = await asyncio.to_thread(
        client.AppsV1Api(k8s).read_namespaced_deployment, f"{name}-sagaz-operator", namespace
    )
    assert deployment.spec.template.spec.security_context.run_as_non_root is True
    kubeconfig = await asyncio.to_thread(
        token_kubeconfig,
        k8s,
        cluster,
        account=f"{name}-sagaz-operator",
        namespace=namespace,
        path=tmp_path / "chart.kubeconfig",
    )
    with kube.namespace(k8s, prefix="e2e-own-rbac") as served:
        operator = OperatorProcess(
            kubeconfig=kubeconfig,
            database_url=postgres_url,
            namespaces=[served],
            log=tmp_path / "operator.log",
        )
        await asyncio.to_thread(operator.start)
        try:
            sagas = Sagas(k8s, served)
            async with ParticipantServer() as shop:
                shop.on("/a", Respond(json={"ok": True}))
                spec = {
                    "steps": [
                        {"name": "a", "action": {"http": {"url": shop.url("/a")}}},
                        {"name": "b", "dependsOn": ["a"], "action": kwok_job(output={"b": 1})},
                    ]
                }
                await sagas.start(
                    "rbac",
                    {"definition": spec, "input": {"orderId": "1"}, "ttlSecondsAfterFinished": 1},
                )
                saga = await sagas.wait("rbac")
                assert saga["status"]["phase"] == "Succeeded", saga["status"]
                assert await sagas.deleted("rbac", within=30)  # deleting needs its verb too
            await sagas.create(
                "outboxworkers",
                "OutboxWorker",
                "relay",
                {
                    "database": {"urlSecretRef": {"name": "none", "key": "url"}},
                    "kafka": {"bootstrapServers": "k:9092"},
                },
            )
            worker = await sagas.wait_for(
                lambda o: (o.get("status") or {}).get("readyReplicas") == 1,
                plural="outboxworkers",
            )
            assert "secret" in worker["status"]["conditions"][0]["message"]
        finally:
            await asyncio.to_thread(operator.stop)
    assert "Forbidden" not in (tmp_path / "operator.log").read_text()


async def test_the_plugin_finds_the_charts_api_service_through_the_apiserver(
    cluster: stack.Cluster, release: tuple[str, str]
) -> None:
    """Only the way there is verified: the local cluster's pods run no containers, so the
    apiserver's proxy cannot reach the API behind the Service, and the plugin says so."""
    name, namespace = release
    plugin = Plugin(cluster.kubeconfig, namespace, api=None)

    result = await plugin("get")

    assert result.code == 1
    assert result.err.startswith(
        f"error: cannot reach the Sagaz read API through the service "
        f"{namespace}/{name}-sagaz-operator-api"
    )


def test_the_optional_ingress_routes_the_whole_host_to_the_ui(cluster: stack.Cluster) -> None:
    def ingresses(*values: str) -> list[dict[str, Any]]:
        rendered = helm(cluster, "template", "t", str(CHART), *[f"--set={v}" for v in values])
        return [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Ingress"]

    assert ingresses() == []
    (ingress,) = ingresses(
        "api.ingress.enabled=true",
        "api.ingress.host=sagaz.example.com",
        "api.ingress.className=nginx",
    )
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "sagaz.example.com"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"] == {"name": "t-sagaz-operator-api", "port": {"name": "http"}}
    assert ingresses("api.enabled=false", "api.ingress.enabled=true") == []
