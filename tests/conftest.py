"""Session fixtures: the real components every integration and e2e test runs against."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes.client import ApiClient

from harness import kube, stack

pytest_plugins = ["harness.isolated", "harness.jaeger"]


@pytest.fixture(scope="session")
def cluster() -> Iterator[stack.Cluster]:
    with stack.cluster() as running:
        yield running


@pytest.fixture
def kwok_node(cluster: stack.Cluster) -> None:
    """Skips the test unless it runs on the local control plane, whose kwok node decides how
    pods end (labels and annotations in hack/kwok/stages.yaml); on another cluster the same
    pods would really run an image that does not exist."""
    if not cluster.local:
        pytest.skip("needs the local control plane's kwok node")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with stack.kafka() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with stack.postgres() as instance:
        yield instance.url


@pytest.fixture(scope="session")
def k8s(cluster: stack.Cluster) -> Iterator[ApiClient]:
    with kube.api_client(str(cluster.kubeconfig)) as api:
        yield api


@pytest.fixture
def namespace(k8s: ApiClient) -> Iterator[str]:
    with kube.namespace(k8s) as name:
        yield name
