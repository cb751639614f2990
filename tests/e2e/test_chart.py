"""The Helm chart: it lints, installs, and its RBAC is enough for the operator to work --
cluster-wide, or confined to Roles in the namespaces of ``watchNamespaces``.

The local cluster has no image registry and kwok does not run containers, so the chart's own
operator pod cannot really run here. Instead the operator process runs with the chart's
ServiceAccount token: every API call it makes is authorised by the chart's RBAC alone, so a
missing permission fails these tests.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from harness import chart, kube, stack
from harness.operator import OperatorProcess
from harness.participants import ParticipantServer, Respond
from harness.plugin import Plugin
from harness.sagas import Sagas, kwok_job
from sagaz_operator.api.definition import GROUP, VERSION

pytestmark = pytest.mark.cluster

CHART = chart.CHART
helm = chart.helm
WORKLOADS = {"secrets", "jobs", "pods", "deployments", "horizontalpodautoscalers"}
DEPLOYMENT = "templates/deployment.yaml"


def test_chart_lints_and_carries_the_generated_crds(cluster: stack.Cluster) -> None:
    helm(cluster, "lint", str(CHART))

    for generated in sorted((stack.REPO_ROOT / "crds").glob("*.yaml")):
        copy = CHART / "crds" / generated.name
        assert copy.read_text() == generated.read_text(), f"{copy} drifted: run make crds"


def test_rendered_rbac_is_confined_to_the_watched_namespaces() -> None:
    def rules(documents: list[Any], kind: str) -> dict[str | None, set[str]]:
        found: dict[str | None, set[str]] = {}
        for doc in documents:
            if doc["kind"] == kind and not doc["metadata"]["name"].endswith("-members"):
                resources = {r for rule in doc["rules"] for r in rule["resources"]}
                found[doc["metadata"].get("namespace")] = resources
        return found

    scoped = chart.render("watchNamespaces={shop,billing}", show_only="templates/rbac.yaml")
    (cluster_wide,) = rules(scoped, "ClusterRole").values()
    assert not cluster_wide & WORKLOADS
    assert rules(scoped, "Role") == {
        "shop": WORKLOADS,
        "billing": WORKLOADS,
    }
    bound = {
        d["metadata"]["namespace"]
        for d in scoped
        if d["kind"] == "RoleBinding" and not d["metadata"]["name"].endswith("-members")
    }
    assert bound == {"shop", "billing"}  # the Lease Role aside (the release's namespace)

    # Each namespace is its own --namespace flag: in one comma list, Kopf (and the operator,
    # which judges the patterns alike) would serve only the first.
    rendered = chart.render("watchNamespaces={shop,billing}", show_only=DEPLOYMENT)
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    (operator,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [a for a in operator["args"] if a.startswith("--namespace")] == [
        "--namespace=shop",
        "--namespace=billing",
    ]

    # Without a list of plain names there is no namespace to write a Role in.
    for settings in ((), ("watchNamespaces={shop-*}",)):
        documents = chart.render(*settings, show_only="templates/rbac.yaml")
        (cluster_wide,) = rules(documents, "ClusterRole").values()
        assert cluster_wide >= WORKLOADS
        assert rules(documents, "Role") == {}


def test_replicas_get_lease_rights_and_a_disruption_budget_beyond_one() -> None:
    documents = chart.render("replicaCount=3")
    budget = next(doc for doc in documents if doc["kind"] == "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    role = next(doc for doc in documents if doc["metadata"]["name"].endswith("-members"))
    assert role["kind"] == "Role"
    assert role["metadata"]["namespace"]  # the release's namespace only
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        }
    ]
    env = next(doc for doc in documents if doc["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    names = {variable["name"]: variable for variable in env}
    assert names["SAGAZ_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert names["SAGAZ_LEASE_DURATION"]["value"] == "15"
    assert not [doc for doc in chart.render() if doc["kind"] == "PodDisruptionBudget"]


def test_the_admission_policy_is_on_by_default_and_can_be_turned_off() -> None:
    kinds = [doc["kind"] for doc in chart.render()]
    assert "ValidatingAdmissionPolicy" in kinds
    assert "ValidatingAdmissionPolicyBinding" in kinds
    kinds = [doc["kind"] for doc in chart.render("admissionPolicy.enabled=false")]
    assert "ValidatingAdmissionPolicy" not in kinds


@contextmanager
def installed(
    cluster: stack.Cluster, namespace: str, postgres_url: str, *settings: str
) -> Iterator[str]:
    name = f"sagaz-{uuid.uuid4().hex[:6]}"
    extra = [arg for setting in settings for arg in ("--set", setting)]
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
        *extra,
    )
    try:
        yield name
    finally:
        helm(cluster, "uninstall", name, "-n", namespace)


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
    with (
        kube.namespace(k8s, prefix="e2e-own-chart") as namespace,
        installed(cluster, namespace, postgres_url) as name,
    ):
        yield name, namespace


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
    return stack.token_kubeconfig(cluster.kubeconfig, user=account, token=token, path=path)


async def run_as_chart(
    k8s: client.ApiClient,
    kubeconfig: Path,
    *,
    served: str,
    home: str,
    postgres_url: str,
    log: Path,
) -> None:
    """Run the operator with the chart's ServiceAccount token in ``served``: a saga with a
    Secret header, a Job step and a TTL deletion, and an OutboxWorker reading its database
    Secret; its member Lease in the release's namespace ``home``, as in a pod. Any call the
    chart's RBAC does not allow fails it."""
    core = client.CoreV1Api(k8s)
    for secret, key, value, label in (
        ("token", "token", "t0ken", "sagaz.io/participant-credentials"),
        ("relay-db", "url", postgres_url, "sagaz.io/outbox-database"),
    ):
        await asyncio.to_thread(
            core.create_namespaced_secret,
            served,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=secret, labels={label: "true"}),
                string_data={key: value},
            ),
        )
    operator = OperatorProcess(
        kubeconfig=kubeconfig,
        database_url=postgres_url,
        namespaces=[served],
        log=log,
        env={"SAGAZ_LEASE_NAMESPACE": home},
    )
    await asyncio.to_thread(operator.start)
    try:
        sagas = Sagas(k8s, served)
        async with ParticipantServer() as shop:
            shop.on("/a", Respond(json={"ok": True}))
            header = {"name": "Authorization", "secretKeyRef": {"name": "token", "key": "token"}}
            spec = {
                "steps": [
                    {
                        "name": "a",
                        "action": {"http": {"url": shop.url("/a"), "headersFrom": [header]}},
                    },
                    {"name": "b", "dependsOn": ["a"], "action": kwok_job(output={"b": 1})},
                ]
            }
            await sagas.start(
                "rbac",
                {"definition": spec, "input": {"orderId": "1"}, "ttlSecondsAfterFinished": 1},
            )
            saga = await sagas.wait("rbac")
            assert saga["status"]["phase"] == "Succeeded", saga["status"]
            assert shop.requests("/a")[0].header("Authorization") == "t0ken"
            assert await sagas.deleted("rbac", within=30)  # deleting needs its verb too
        await sagas.create(
            "outboxworkers",
            "OutboxWorker",
            "relay",
            {
                "database": {"urlSecretRef": {"name": "relay-db", "key": "url"}},
                "kafka": {"bootstrapServers": "k:9092"},
            },
        )
        worker = await sagas.wait_for(
            lambda o: (o.get("status") or {}).get("readyReplicas") == 1,
            plural="outboxworkers",
        )
        (ready,) = worker["status"]["conditions"]
        assert (ready["status"], ready["reason"]) == ("True", "Reconciled"), ready
        # Deleted while the operator runs: its finalizer would keep the namespace Terminating.
        await asyncio.to_thread(
            client.CustomObjectsApi(k8s).delete_namespaced_custom_object,
            GROUP,
            VERSION,
            served,
            "outboxworkers",
            "relay",
        )
        assert await sagas.deleted("relay", within=30, plural="outboxworkers")
    finally:
        await asyncio.to_thread(operator.stop)
    assert "Forbidden" not in await asyncio.to_thread(log.read_text)


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
        await run_as_chart(
            k8s,
            kubeconfig,
            served=served,
            home=namespace,
            postgres_url=postgres_url,
            log=tmp_path / "op.log",
        )


@pytest.mark.usefixtures("kwok_node")
async def test_with_watch_namespaces_the_operator_has_secret_and_job_rights_only_there(
    k8s: client.ApiClient, cluster: stack.Cluster, postgres_url: str, tmp_path: Path
) -> None:
    with (
        kube.namespace(k8s, prefix="e2e-own-chart") as home,
        kube.namespace(k8s, prefix="e2e-own-served") as served,
        kube.namespace(k8s, prefix="e2e-own-other") as other,
        installed(cluster, home, postgres_url, f"watchNamespaces={{{served}}}") as name,
    ):
        account = f"system:serviceaccount:{home}:{name}-sagaz-operator"

        def can(*args: str) -> bool:
            done = subprocess.run(
                [
                    stack.kubectl(),
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                    "auth",
                    "can-i",
                    "--as",
                    account,
                    *args,
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            return done.stdout.strip() == "yes"

        for where in (served, other, home):
            expected = where == served
            assert can("get", "secrets", "-n", where) is expected, where
            assert can("create", "jobs.batch", "-n", where) is expected, where
            assert can("create", "deployments.apps", "-n", where) is expected, where
        assert not can("get", "secrets", "--all-namespaces")
        assert not can("create", "jobs.batch", "--all-namespaces")
        assert can("watch", "sagas.sagaz.io", "--all-namespaces")  # its own kinds stay

        kubeconfig = await asyncio.to_thread(
            token_kubeconfig,
            k8s,
            cluster,
            account=f"{name}-sagaz-operator",
            namespace=home,
            path=tmp_path / "chart.kubeconfig",
        )
        await run_as_chart(
            k8s,
            kubeconfig,
            served=served,
            home=home,
            postgres_url=postgres_url,
            log=tmp_path / "op.log",
        )


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
