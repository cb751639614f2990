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


class Streams:
    """The real client, counting the watch streams opened on it (each a renewal after the
    server ended the one before)."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self.opened = 0
        self.changed = asyncio.Event()

    async def list_all(self, path: str) -> tuple[list[dict[str, Any]], str]:
        return await self._kube.list_all(path)

    def watch(
        self, path: str, *, resource_version: str, seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        self.opened += 1
        self.changed.set()
        return self._kube.watch(path, resource_version=resource_version, seconds=seconds)

    async def until_opened(self, count: int, within: float = 30) -> None:
        async with asyncio.timeout(within):
            while self.opened < count:
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
    streams = Streams(kube)
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/sagas"
    watch = Informer(
        streams, path, seen, kind="Saga", api_version=API_VERSION, served=Served(), seconds=2
    )
    task = asyncio.create_task(watch.run_forever())
    try:
        await seen.until((None, "before"))  # listed
        await sagas.start("during", SPEC)
        await seen.until(("ADDED", "during"))
        renewed = streams.opened + 2
        await streams.until_opened(renewed)  # the server ended two streams meanwhile
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
