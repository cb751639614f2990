"""The Kubernetes adapter's Secret reader against the real API server: it hands on a Secret
only if its owner labelled it, and only one of the namespace it was asked about."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator

import pytest
from kubernetes import client
from kubernetes.config import kube_config

from harness import kube, stack
from sagaz_operator.adapters.kube import Kube
from sagaz_operator.errors import SecretNotOptedInError

pytestmark = pytest.mark.cluster

LABEL = "sagaz.io/participant-credentials"


@pytest.fixture
async def adapter(cluster: stack.Cluster, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kube]:
    # The official loader read $KUBECONFIG when it was imported; point it at the test cluster.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(cluster.kubeconfig))
    reader = Kube.from_environment()
    yield reader
    await reader.close()


@pytest.fixture
def other_namespace(k8s: client.ApiClient) -> Iterator[str]:
    with kube.namespace(k8s, prefix="other") as name:
        yield name


def secret(k8s: client.ApiClient, namespace: str, name: str, value: str, **labels: str) -> None:
    client.CoreV1Api(k8s).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels=labels or None),
            data={"token": base64.b64encode(value.encode()).decode()},
        ),
    )


async def test_only_a_secret_carrying_the_label_is_read(
    adapter: Kube, k8s: client.ApiClient, namespace: str
) -> None:
    secret(k8s, namespace, "labelled", "yes", **{LABEL: "true"})
    secret(k8s, namespace, "plain", "no")
    secret(k8s, namespace, "not-true", "no", **{LABEL: "false"})

    assert (
        await adapter.read(namespace=namespace, name="labelled", key="token", opt_in_label=LABEL)
        == "yes"
    )
    for name in ("plain", "not-true"):
        with pytest.raises(SecretNotOptedInError) as refused:
            await adapter.read(namespace=namespace, name=name, key="token", opt_in_label=LABEL)
        assert str(refused.value) == (
            f'Secret {namespace}/{name} is not labelled {LABEL}: "true", so the operator will'
            f" not use it; its owner can opt in with: kubectl label secret -n {namespace}"
            f" {name} {LABEL}=true"
        )


@pytest.mark.parametrize(
    "name",
    ["../../{other}/secrets/target", "..%2F..%2F{other}%2Fsecrets%2Ftarget", "..", "target/x"],
)
async def test_a_name_that_is_a_path_never_leaves_the_namespace(
    adapter: Kube, k8s: client.ApiClient, namespace: str, other_namespace: str, name: str
) -> None:
    secret(k8s, other_namespace, "target", "theirs", **{LABEL: "true"})

    with pytest.raises(LookupError):
        await adapter.read(
            namespace=namespace,
            name=name.format(other=other_namespace),
            key="token",
            opt_in_label=LABEL,
        )
