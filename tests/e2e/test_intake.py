"""How Sagas come in: Kopf writes nothing to them, and deleting one stops its executor.

Sagas are taken in through a plain watch handler (``services/intake.py``), not a Kopf daemon
with field handlers, so no finalizer and no diff-base annotation is ever written to a Saga.
"""

from __future__ import annotations

import asyncio

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from harness.participants import ParticipantServer, Respond, Stall
from harness.sagas import Sagas
from sagaz_operator.api.definition import GROUP, VERSION

pytestmark = pytest.mark.cluster


def chain(server: ParticipantServer) -> dict[str, object]:
    """a -> b"""
    return {
        "steps": [
            {"name": "a", "action": {"http": {"url": server.url("/a")}}},
            {"name": "b", "dependsOn": ["a"], "action": {"http": {"url": server.url("/b")}}},
        ]
    }


async def test_a_finished_saga_carries_no_kopf_bookkeeping(
    sagas: Sagas, participants: ParticipantServer
) -> None:
    participants.on("/a", Respond())
    participants.on("/b", Respond())

    await sagas.start("plain", {"definition": chain(participants)})
    saga = await sagas.wait("plain")

    assert saga["status"]["phase"] == "Succeeded"
    meta = saga["metadata"]
    assert not meta.get("finalizers")
    assert [key for key in meta.get("annotations") or {} if key.startswith("sagaz.io/")] == []


async def test_deleting_a_running_saga_stops_its_executor(
    k8s: ApiClient, sagas: Sagas, participants: ParticipantServer
) -> None:
    stall = participants.on("/a", Stall())
    participants.on("/b", Respond())
    await sagas.start("doomed", {"definition": chain(participants)})
    await participants.wait_for_requests("/a", 1, within=30)

    await asyncio.to_thread(
        client.CustomObjectsApi(k8s).delete_namespaced_custom_object,
        GROUP,
        VERSION,
        sagas.namespace,
        "sagas",
        "doomed",
    )
    assert await sagas.deleted("doomed")  # no finalizer holds it
    stall.release()  # a answers now: a live executor would go on to b

    with pytest.raises(TimeoutError):
        await participants.wait_for_requests("/b", 1, within=3)
