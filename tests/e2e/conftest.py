"""End-to-end fixtures: CRDs installed, one operator process serving ``e2e-*`` namespaces."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from kubernetes.client import ApiClient

from harness import crds, kube, stack
from harness.operator import OperatorProcess
from harness.participants import ParticipantServer
from harness.sagas import Sagas


@pytest.fixture(scope="session")
def operator(
    k8s: ApiClient,
    cluster: stack.Cluster,
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    crds.install(k8s)
    process = OperatorProcess(
        kubeconfig=cluster.kubeconfig,
        database_url=postgres_url,
        # e2e-own-* namespaces belong to tests that run operators of their own.
        namespaces=["e2e-*,!e2e-own-*"],
        log=tmp_path_factory.mktemp("operator") / "operator.log",
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def e2e_namespace(k8s: ApiClient, operator: OperatorProcess) -> Iterator[str]:
    with kube.namespace(k8s, prefix="e2e") as name:
        yield name


@pytest.fixture
def sagas(k8s: ApiClient, e2e_namespace: str) -> Sagas:
    return Sagas(k8s, e2e_namespace)


@pytest.fixture
async def participants() -> AsyncIterator[ParticipantServer]:
    async with ParticipantServer() as server:
        yield server
