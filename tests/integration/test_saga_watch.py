"""The Sagas' list and watch (``services.informer`` over ``adapters.kube``) against the real
API server: every create, change and delete arrives, across streams the server ends (a
two-second server timeout here, renewed from the last version seen), and a version too old to
watch from is refused with 410 (which makes the informer list again)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from kubernetes import client

from harness import stack
from harness.sagas import Sagas
from sagaz_operator.adapters.kube import ApiError, Kube
from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.domain.namespaces import Served
from sagaz_operator.services.informer import Informer

SPEC = {"definition": {"steps": [{"name": "a", "action": {"http": {"url": "http://shop/a"}}}]}}


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str | None, str]] = []
        self.changed = asyncio.Event()

    def __call__(self, kind: str | None, body: Mapping[str, Any]) -> None:
        self.events.append((kind, str(body["metadata"].get("name"))))
        self.changed.set()

    async def until(self, expected: tuple[str | None, str], within: float = 30) -> None:
        async with asyncio.timeout(within):
            while expected not in self.events:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def kube(cluster: stack.Cluster) -> AsyncIterator[Kube]:
    api = Kube.from_environment(str(cluster.kubeconfig))
    yield api
    await api.close()


async def test_creates_changes_and_deletes_arrive_across_renewed_streams(
    k8s: client.ApiClient, namespace: str, kube: Kube
) -> None:
    sagas = Sagas(k8s, namespace)
    await sagas.start("before", SPEC)
    seen = Seen()
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/sagas"
    watch = Informer(
        kube, path, seen, kind="Saga", api_version=API_VERSION, served=Served(), seconds=2
    )
    task = asyncio.create_task(watch.run_forever())
    try:
        await seen.until((None, "before"))  # listed
        await sagas.start("during", SPEC)
        await seen.until(("ADDED", "during"))
        await asyncio.sleep(4.5)  # the server ends two streams meanwhile
        await sagas.start("after", SPEC)
        await seen.until(("ADDED", "after"))
        custom = client.CustomObjectsApi(k8s)
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object,
            "sagaz.io",
            "v1alpha1",
            namespace,
            "sagas",
            "before",
            {"spec": {"suspend": True}},
        )
        await seen.until(("MODIFIED", "before"))
        await asyncio.to_thread(
            custom.delete_namespaced_custom_object,
            "sagaz.io",
            "v1alpha1",
            namespace,
            "sagas",
            "during",
        )
        await seen.until(("DELETED", "during"))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen.events.count((None, "before")) == 1, seen.events  # listed once, never again
    assert seen.events.count(("ADDED", "during")) == 1, seen.events


async def test_a_version_too_old_is_refused_with_410(namespace: str, kube: Kube) -> None:
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/sagas"
    with pytest.raises(ApiError) as refused:  # noqa: PT012 - the first event decides
        async for event in kube.watch(path, resource_version="1", seconds=5):
            assert event["type"] == "ERROR"
            raise ApiError(int(event["object"]["code"]), str(event["object"].get("message")))
    assert refused.value.status == 410
