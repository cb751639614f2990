"""Create SagaDefinitions and Sagas and wait for their phases, without blocking the loop.

The participant servers run in the test's event loop, so every Kubernetes call here runs in
a worker thread; waiting uses the watch API (events, not polling).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from kubernetes import client

from harness import kube
from sagaz_operator.api.definition import API_VERSION, GROUP, VERSION

TERMINAL = ("Succeeded", "Compensated", "CompensationFailed", "Failed")


class Sagas:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)

    async def define(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return await self.create("sagadefinitions", "SagaDefinition", name, spec)

    async def start(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return await self.create("sagas", "Saga", name, spec)

    async def get(self, name: str, plural: str = "sagas") -> dict[str, Any]:
        result: dict[str, Any] = await asyncio.to_thread(
            self._custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace, plural, name
        )
        return result

    async def replace_definition(self, name: str, spec: dict[str, Any]) -> None:
        # A merge patch of the whole spec, not get-then-replace: the operator writes the
        # definition's status meanwhile, and a replace of the read version would conflict.
        await asyncio.to_thread(
            self._custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            "sagadefinitions",
            name,
            {"spec": spec},
        )

    async def delete_definition(self, name: str) -> None:
        await asyncio.to_thread(
            self._custom.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            "sagadefinitions",
            name,
        )

    async def wait(
        self,
        name: str,
        phases: tuple[str, ...] = TERMINAL,
        *,
        plural: str = "sagas",
        within: float = 60,
    ) -> dict[str, Any]:
        """The object once its ``status.phase`` is one of ``phases``."""

        def matches(item: dict[str, Any]) -> bool:
            return item["metadata"]["name"] == name and (
                (item.get("status") or {}).get("phase") in phases
            )

        return await self.wait_for(matches, plural=plural, within=within)

    async def deleted(self, name: str, *, within: float = 60, plural: str = "sagas") -> bool:
        """Wait until saga (or other object of ``plural``) ``name`` no longer exists."""
        return await asyncio.to_thread(
            kube.wait_deleted,
            self._custom.list_namespaced_custom_object,
            name,
            timeout=within,
            group=GROUP,
            version=VERSION,
            namespace=self.namespace,
            plural=plural,
        )

    async def wait_all(self, names: list[str], *, within: float = 120) -> dict[str, str]:
        """Wait (one watch for all) until every saga in ``names`` is finished; their phases."""
        phases: dict[str, str] = {}
        wanted = set(names)

        def record(item: dict[str, Any]) -> bool:
            name, phase = item["metadata"]["name"], (item.get("status") or {}).get("phase")
            if name in wanted and phase in TERMINAL:
                phases[name] = phase
            return len(phases) == len(wanted)

        await self.wait_for(record, within=within)
        return phases

    async def wait_for(self, predicate: Any, *, plural: str = "sagas", within: float = 60) -> Any:
        return await asyncio.to_thread(
            kube.wait_for,
            self._custom.list_namespaced_custom_object,
            predicate,
            timeout=within,
            group=GROUP,
            version=VERSION,
            namespace=self.namespace,
            plural=plural,
        )

    async def events(
        self, name: str, *, until: Callable[[list[str]], bool], within: float = 30
    ) -> list[tuple[str, str]]:
        """(reason, message) of the Kubernetes Events about saga ``name``, once their reasons
        satisfy ``until``.

        The operator posts Events alongside the status, not before it, so a test that has seen
        a terminal phase waits for the Events it expects. The operator's Events carry an
        ``eventTime`` with microseconds (events.k8s.io/v1), so they come in the order posted.
        """
        seen: dict[str, Any] = {}

        def ordered() -> list[Any]:
            return sorted(
                seen.values(),
                key=lambda e: (e.event_time or e.first_timestamp, e.metadata.name),
            )

        def record(event: Any) -> bool:
            seen[event.metadata.name] = event
            return until([e.reason for e in ordered()])

        await asyncio.to_thread(
            kube.wait_for,
            self._core.list_namespaced_event,
            record,
            timeout=within,
            namespace=self.namespace,
            field_selector=f"involvedObject.name={name}",
        )
        return [(e.reason, e.message) for e in ordered()]

    async def patch_object(self, plural: str, name: str, spec: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self._custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            plural,
            name,
            {"spec": spec},
        )

    async def create(self, plural: str, kind: str, name: str, spec: dict[str, Any]) -> Any:
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
        return await asyncio.to_thread(
            self._custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            plural,
            body,
        )


def kwok_job(
    *,
    output: Any = None,
    outcome: str | None = None,
    delay: str | None = None,
    **pod: Any,
) -> dict[str, Any]:
    """A Job call whose pod kwok ends as told (see hack/kwok/stages.yaml)."""
    annotations = {}
    if output is not None:
        annotations["sagaz.io/kwok-termination-message"] = json.dumps(output)
    if delay is not None:
        annotations["sagaz.io/kwok-delay"] = delay
    labels = {"sagaz.io/kwok-outcome": outcome} if outcome else {}
    return {
        "job": {
            "template": {
                "metadata": {"annotations": annotations, "labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "example/step:1",
                            "args": ["--order", "${input.orderId}"],
                        }
                    ],
                    **pod,
                },
            }
        }
    }
