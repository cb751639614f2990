"""The operator's own guard, for clusters without the admission policy (or objects admitted
before it): a Secret is used only if its owner opted in with a label, and only ever one of
the object's own namespace.

The saga's author here may write Sagas and OutboxWorkers and nothing else (impersonation);
the policy's binding is deleted for the test, so the API server admits whatever they write,
and only the operator stands between them and the Secrets.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from harness import chart, kube, rbac, stack
from harness.participants import ParticipantServer, Respond
from harness.sagas import Sagas
from sagaz_operator.api.definition import GROUP

pytestmark = pytest.mark.cluster

SECRET = "pa55-payments-token-3f9a"
OPT_IN = "sagaz.io/participant-credentials"


@pytest.fixture
def without_policy(cluster: stack.Cluster) -> Iterator[None]:
    chart.delete_admission_binding(cluster)
    try:
        yield
    finally:
        chart.apply_admission_policy(cluster)


@pytest.fixture
def author(
    k8s: client.ApiClient, cluster: stack.Cluster, e2e_namespace: str, without_policy: None
) -> Sagas:
    user = rbac.new_user("mallory")
    rbac.grant(k8s, namespace=e2e_namespace, user=user, name="author", rules=[rbac.SAGAZ_AUTHOR])
    api = rbac.as_user(str(cluster.kubeconfig), user)
    rbac.wait_allowed(api, verb="create", resource="sagas", group=GROUP, namespace=e2e_namespace)
    chart.wait_enforced(api, e2e_namespace, enforced=False)
    return Sagas(api, e2e_namespace)


def create_secret(
    k8s: client.ApiClient, namespace: str, name: str, data: dict[str, str], **labels: str
) -> None:
    client.CoreV1Api(k8s).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels=labels or None),
            data={key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
        ),
    )


def sent_anywhere(participants: ParticipantServer, value: str) -> bool:
    return any(value in str(request.headers) for request in participants.requests())


def charge(participants: ParticipantServer) -> dict[str, Any]:
    http = {
        "url": participants.url("/charge"),
        "headersFrom": [
            {"name": "Authorization", "secretKeyRef": {"name": "payments-token", "key": "token"}}
        ],
    }
    return {"definition": {"steps": [{"name": "charge", "action": {"http": http}}]}}


async def test_an_unlabelled_secret_is_never_sent_and_a_labelled_one_is(
    k8s: client.ApiClient, author: Sagas, participants: ParticipantServer
) -> None:
    namespace = author.namespace
    await asyncio.to_thread(create_secret, k8s, namespace, "payments-token", {"token": SECRET})
    participants.on("/charge", Respond(json={"charged": True}))

    await author.start("grab", charge(participants))
    saga = await author.wait("grab")

    assert saga["status"]["phase"] == "Compensated"
    error = saga["status"]["steps"][0]["error"]
    assert f'Secret {namespace}/payments-token is not labelled {OPT_IN}: "true"' in error
    assert f"kubectl label secret -n {namespace} payments-token {OPT_IN}=true" in error
    assert "not retryable" in error
    assert participants.requests() == []
    assert not sent_anywhere(participants, SECRET)

    await asyncio.to_thread(
        client.CoreV1Api(k8s).patch_namespaced_secret,
        "payments-token",
        namespace,
        {"metadata": {"labels": {OPT_IN: "true"}}},
    )
    await author.start("paid", charge(participants))
    saga = await author.wait("paid")

    assert saga["status"]["phase"] == "Succeeded", saga["status"]
    (request,) = participants.requests("/charge")
    assert request.header("Authorization") == SECRET


async def test_an_outboxworker_starts_no_worker_until_its_secret_opts_in(
    k8s: client.ApiClient, author: Sagas, postgres_url: str
) -> None:
    namespace = author.namespace
    await asyncio.to_thread(create_secret, k8s, namespace, "orders-db", {"url": postgres_url})
    spec = {
        "database": {"urlSecretRef": {"name": "orders-db", "key": "url"}},
        "kafka": {"bootstrapServers": "kafka.data.svc:9092"},
        "autoscaling": {"enabled": False},
    }

    await author.create("outboxworkers", "OutboxWorker", "relay", spec)
    worker = await author.wait_for(
        lambda o: bool((o.get("status") or {}).get("conditions")), plural="outboxworkers"
    )

    (ready,) = worker["status"]["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotOptedIn")
    assert "spec.database.urlSecretRef: Secret" in ready["message"]
    apps = client.AppsV1Api(k8s)
    listed = await asyncio.to_thread(apps.list_namespaced_deployment, namespace)
    assert listed.items == []

    await asyncio.to_thread(
        client.CoreV1Api(k8s).patch_namespaced_secret,
        "orders-db",
        namespace,
        {"metadata": {"labels": {"sagaz.io/outbox-database": "true"}}},
    )
    worker = await author.wait_for(
        lambda o: any(
            c["reason"] == "Reconciled" for c in (o.get("status") or {}).get("conditions", [])
        ),
        plural="outboxworkers",
    )
    listed = await asyncio.to_thread(apps.list_namespaced_deployment, namespace)
    assert [d.metadata.name for d in listed.items] == ["relay-outbox-worker"]

    # Taking the label away takes the workers away (at the next periodic reconcile).
    await asyncio.to_thread(
        client.CoreV1Api(k8s).patch_namespaced_secret,
        "orders-db",
        namespace,
        {"metadata": {"labels": {"sagaz.io/outbox-database": None}}},
    )
    assert await asyncio.to_thread(
        kube.wait_deleted,
        apps.list_namespaced_deployment,
        "relay-outbox-worker",
        namespace=namespace,
    )


async def test_a_secret_name_cannot_reach_into_another_namespace(
    k8s: client.ApiClient, author: Sagas, participants: ParticipantServer
) -> None:
    """There is no namespace field, and a name that is a path is refused by the CRD's schema;
    the operator also refuses such a name itself (``Kube.read``, tested in
    tests/integration/test_kube_secrets.py)."""
    spec = charge(participants)
    headers = spec["definition"]["steps"][0]["action"]["http"]["headersFrom"]
    headers[0]["secretKeyRef"] = {
        "name": "../../kube-system/secrets/payments-token",
        "namespace": "kube-system",
        "key": "token",
    }

    with pytest.raises(client.ApiException) as caught:
        await author.start("escape", spec)

    assert caught.value.status == 422
    assert "secretKeyRef.name" in caught.value.body
